// See core/kernels/attention.h.
#include "core/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/kernels/matmul.h"
#include "core/kernels/softmax.h"

namespace payless::kernels {
namespace {

// Positions query t of a hypothesis sees.
int64_t visible_length(const CachedAttention& a, int64_t t) {
  return a.causal ? a.length - a.queries + t + 1 : a.length;
}

// Asks for the cache lines of n floats from p on: the positions a few ahead of the one being
// read. (Prefetches past the end of the cache are harmless: they never fault.)
inline void prefetch_floats(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}
constexpr int64_t kPrefetchPositions = 4;

}  // namespace

void attend_cached(const CachedAttention& a, float masked_score) {
  const int64_t N = a.rows, T = a.queries, H = a.heads, D = a.head_dim, L = a.length, C = H * D;
  // Two passes over L·C cached floats per query: a step at batch 1 is far below what pays for
  // waking a second thread (the threshold of the one-row products, whose work is alike).
  const bool parallel = 2 * N * T * L * C >= kSmallGemmParallelWork;
#pragma omp parallel if (parallel)
  {
    std::vector<float> p(static_cast<size_t>(H * L));  // (H, L) scores, then probabilities
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      // The cache of a row is one block, position after position, all heads side by side, and
      // each pass below walks it from start to end: the keys and values of earlier steps are no
      // longer in cache (the step's weights went through since), and one forward stream is what
      // the hardware prefetchers follow. Head by head, the same walk took 4x as long.
      const int64_t r = a.row_of ? a.row_of[n] : n;
      const float* k = a.keys + r * a.cache_stride;    // (L, C)
      const float* v = a.values + r * a.cache_stride;  // (L, C)
      const float* mask = a.mask ? a.mask + r * a.mask_stride : nullptr;
      for (int64_t t = 0; t < T; ++t) {
        const float* q = a.q + (n * T + t) * C;  // (C), head h in [h·D, (h+1)·D)
        float* o = a.out + (n * T + t) * C;
        const int64_t S = visible_length(a, t);
        for (int64_t l = 0; l < S; ++l) {
          const float* kl = k + l * C;
          prefetch_floats(kl + kPrefetchPositions * C, C);
          for (int64_t h = 0; h < H; ++h) {
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t d = 0; d < D; ++d) s += q[h * D + d] * kl[h * D + d];
            p[h * L + l] = mask && mask[l] != 0.0f ? masked_score : s;
          }
        }
        // softmax per head: p_l = exp(s_l - max) / Σ exp(s_j - max)
        for (int64_t h = 0; h < H; ++h) {
          float* ph = p.data() + h * L;
          float max = masked_score;
          for (int64_t l = 0; l < S; ++l) max = std::max(max, ph[l]);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t l = 0; l < S; ++l) {
            ph[l] = fast_exp(ph[l] - max);
            sum += ph[l];
          }
          const float inv = 1.0f / sum;
          for (int64_t l = 0; l < S; ++l) ph[l] *= inv;
        }
        std::fill(o, o + C, 0.0f);
        for (int64_t l = 0; l < S; ++l) {
          const float* vl = v + l * C;
          prefetch_floats(vl + kPrefetchPositions * C, C);
          for (int64_t h = 0; h < H; ++h) {
            const float pl = p[h * L + l];
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) o[h * D + d] += pl * vl[h * D + d];
          }
        }
      }
    }
  }
}

void attend_cached_reference(const CachedAttention& a, float masked_score) {
  const int64_t N = a.rows, T = a.queries, H = a.heads, D = a.head_dim, C = H * D;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = a.row_of ? a.row_of[n] : n;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t S = visible_length(a, t);
        const float* q = a.q + (n * T + t) * C + h * D;
        std::vector<double> s(static_cast<size_t>(S));
        double max = -INFINITY;
        for (int64_t l = 0; l < S; ++l) {
          const float* k = a.keys + r * a.cache_stride + l * C + h * D;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) dot += double(q[d]) * k[d];
          if (a.mask && a.mask[r * a.mask_stride + l] != 0.0f) dot = masked_score;
          s[l] = dot;
          max = std::max(max, dot);
        }
        double sum = 0.0;
        for (double& x : s) sum += (x = std::exp(x - max));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0.0;
          for (int64_t l = 0; l < S; ++l) acc += s[l] / sum * a.values[r * a.cache_stride + l * C + h * D + d];
          a.out[(n * T + t) * C + h * D + d] = static_cast<float>(acc);
        }
      }
  }
}

}  // namespace payless::kernels
