// See core/kernels/attention.h.
#include "core/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/kernels/matmul.h"
#include "core/kernels/reduce.h"
#include "core/kernels/softmax.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace payless::kernels {

// ---- Whole sequences

namespace {

// 16 floats as one value. GCC turns arithmetic on it into single vector instructions (one AVX-512
// register here) and keeps accumulators of this type in registers: the loops below add many rows
// into one short output, and with that output in memory every addition waits for the store of
// the previous one (measured: 1.5x slower than the composed ops it replaces).
typedef float Lanes __attribute__((vector_size(64)));
constexpr int64_t kLaneCount = 16;

inline Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_lanes(float* p, Lanes v) { std::memcpy(p, &v, sizeof v); }

// A matrix read at A[i·row + k·col]: row-major (row = lda, col = 1) or its transpose (row = 1,
// col = lda), so that dsᵀ·q needs no transposed copy of ds.
struct Strided {
  const float* p;
  int64_t row, col;
  float at(int64_t i, int64_t k) const { return p[i * row + k * col]; }
  Strided rows_from(int64_t i) const { return {p + i * row, row, col}; }
};

// Which parts of a per-head product causality leaves nonzero or needed. Row i of A is nonzero only
// at k in [i + k_lo, i + k_hi), and row i of C is needed only in its columns j < i + col_hi (the
// rest is left unwritten). Causal attention skips a good part of every product this way: query
// t's weights past its last visible key are 0, a key gets no gradient from the queries before it,
// and the scores of hidden keys are never read.
struct Band {
  static constexpr int64_t kNone = int64_t(1) << 40;
  int64_t k_lo = -kNone, k_hi = kNone, col_hi = kNone;
};
constexpr Band kDense{};

inline int64_t clamp_to(int64_t x, int64_t n) { return x < 0 ? 0 : x > n ? n : x; }

// The rows [0, R) and columns [0, 16·NV) of C (= or +=) A · B, summing k over [k0, k1): R·NV
// accumulators in registers, per k NV loads of B and R broadcasts of A. R·NV >= 8 keeps two FMA
// units busy through their 4-cycle latency (R = 4 with NV = 1 ran at half the rate of R = 4 with
// NV = 2). The loaded vectors of B are pinned in registers by an empty asm statement: left alone,
// GCC folds the load into every FMA that uses it, R loads per vector instead of one, and the
// products of 128-wide heads (the iwslt models at long T) ran at 33-52 GFLOP/s on one core
// instead of 41-74 (forward and backward, T = 256 ... 2048).
template <int R, int NV>
inline void small_nn_tile(int64_t k0, int64_t k1, Strided A, const float* B, int64_t ldb, float* C,
                          int64_t ldc, bool accumulate) {
  Lanes acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? load_lanes(C + r * ldc + v * kLaneCount) : Lanes{};
  for (int64_t k = k0; k < k1; ++k) {
    Lanes b[NV];
    for (int v = 0; v < NV; ++v) {
      b[v] = load_lanes(B + k * ldb + v * kLaneCount);
#if defined(__AVX512F__)  // a Lanes fits one register only with AVX-512
      if (R > 1) asm("" : "+v"(b[v]));
#endif
    }
    for (int r = 0; r < R; ++r) {
      const float a = A.at(r, k);
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store_lanes(C + r * ldc + v * kLaneCount, acc[r][v]);
}

// Rows [i, i + R) of the strip below, within the band.
template <int R, int NV>
inline void small_nn_band_tile(int64_t i, int64_t K, Strided A, const float* B, int64_t ldb, float* C,
                               int64_t ldc, bool accumulate, Band band, int64_t j0) {
  const int64_t last = i + R - 1;
  if (j0 >= last + band.col_hi) return;  // no row of the tile needs these columns
  const int64_t k0 = clamp_to(i + band.k_lo, K), k1 = clamp_to(last + band.k_hi, K);
  small_nn_tile<R, NV>(k0, k0 > k1 ? k0 : k1, A.rows_from(i), B, ldb, C + i * ldc, ldc, accumulate);
}

// Columns [j0, j0 + 16·NV) of C for all M rows, R rows at a time; B and C point at column j0.
template <int R, int NV>
inline void small_nn_strip(int64_t M, int64_t K, Strided A, const float* B, int64_t ldb, float* C,
                           int64_t ldc, bool accumulate, Band band, int64_t j0) {
  int64_t i = 0;
  for (; i + R <= M; i += R) small_nn_band_tile<R, NV>(i, K, A, B, ldb, C, ldc, accumulate, band, j0);
  for (; i < M; ++i) small_nn_band_tile<1, NV>(i, K, A, B, ldb, C, ldc, accumulate, band, j0);
}

// C (M×N, row stride ldc) = or += A (M×K) · B (K×N, ldb), within `band`: the per-head products,
// whose sizes (T, S up to a few hundred, D = 16 to 128) are far below what pays for a GEMM call.
// Each C[i, j] sums k in order.
void small_nn(int64_t M, int64_t N, int64_t K, Strided A, const float* B, int64_t ldb, float* C,
              int64_t ldc, bool accumulate, Band band = kDense) {
  int64_t j = 0;
  // 64 columns at a time where there are that many: 16 accumulators, half the loads per FMA of
  // the 32-column tile (T = 2048, D = 128: forward 63 -> 48 ms per head).
  for (; j + 4 * kLaneCount <= N; j += 4 * kLaneCount)
    small_nn_strip<4, 4>(M, K, A, B + j, ldb, C + j, ldc, accumulate, band, j);
  for (; j + 2 * kLaneCount <= N; j += 2 * kLaneCount)
    small_nn_strip<4, 2>(M, K, A, B + j, ldb, C + j, ldc, accumulate, band, j);
  for (; j + kLaneCount <= N; j += kLaneCount)
    small_nn_strip<8, 1>(M, K, A, B + j, ldb, C + j, ldc, accumulate, band, j);
  for (; j < N; ++j)
    for (int64_t i = 0; i < M; ++i) {
      if (j >= i + band.col_hi) continue;
      float acc = accumulate ? C[i * ldc + j] : 0.0f;
      for (int64_t k = clamp_to(i + band.k_lo, K); k < clamp_to(i + band.k_hi, K); ++k)
        acc += A.at(i, k) * B[k * ldb + j];
      C[i * ldc + j] = acc;
    }
}
Strided rows_of(const float* p, int64_t ld) { return {p, ld, 1}; }
Strided columns_of(const float* p, int64_t ld) { return {p, 1, ld}; }  // the transpose

// x (rows, cols) with row stride ld -> out (cols, rows), contiguous.
void transpose_block(const float* x, int64_t rows, int64_t cols, int64_t ld, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = x[r * ld + c];
}

// The largest of the 16 lanes, by halving (exact in any order).
inline float max_lane(Lanes v) {
  float m = v[0];
  for (int l = 1; l < kLaneCount; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

// x[0..n) -> softmax(x): x_j = exp(x_j - max) / Σ exp(x_i - max). Used by both kernels below.
// The rows are short (16 to a few hundred keys), so the row is taken in whole vectors of 16, a
// last partial one padded with −inf (exp gives 0): as `omp simd` loops, the prologues, masked
// epilogues and lane folds of three passes cost more than the exps of a 32-key row.
void softmax_in_place(float* x, int64_t n) {
  const int64_t whole = n / kLaneCount * kLaneCount, rest = n - whole;
  const Lanes minus_inf = Lanes{} - std::numeric_limits<float>::infinity();
  Lanes tail = minus_inf;
  for (int64_t l = 0; l < rest; ++l) tail[l] = x[whole + l];
  Lanes m = tail;
  for (int64_t j = 0; j < whole; j += kLaneCount) {
    const Lanes v = load_lanes(x + j);
    m = v > m ? v : m;
  }
  const float max = max_lane(m);
  Lanes total{};
  for (int64_t j = 0; j < whole; j += kLaneCount) {
    const Lanes e = fast_exp_lanes(load_lanes(x + j) - max);
    store_lanes(x + j, e);
    total += e;
  }
  if (rest > 0) {
    tail = fast_exp_lanes(tail - max);
    total += tail;
  }
  const float inv = 1.0f / fold_lanes(total);
  for (int64_t j = 0; j < whole; j += kLaneCount) store_lanes(x + j, load_lanes(x + j) * inv);
  for (int64_t l = 0; l < rest; ++l) x[whole + l] = tail[l] * inv;
}

// keep[0..S): the dropout factors of elements first .. first + S of (B, H, T, S), 1 / (1 - p) or
// 0 (all 1 without dropout). One pass that vectorises, so the hash is not recomputed per use.
void dropout_factors(const AttentionProblem& a, uint64_t first, int64_t S, float* keep) {
  if (!a.dropout) {
    std::fill(keep, keep + S, 1.0f);
    return;
  }
  // The fields as plain locals, so that the loop vectorises (see dropout_rows).
  const uint64_t key = a.dropout_mask.key, min_kept_bits = a.dropout_mask.min_kept_bits;
  const float keep_scale = a.dropout_mask.keep_scale;
#pragma omp simd
  for (int64_t j = 0; j < S; ++j)
    keep[j] = random_bits24(key, first + static_cast<uint64_t>(j)) >= min_kept_bits ? keep_scale : 0.0f;
}

// Keys [visible, S) of query t lie in its future (all S visible without causality).
inline int64_t visible_keys(const AttentionProblem& a, int64_t t) {
  return a.causal ? t + a.keys - a.queries + 1 : a.keys;
}

bool worth_threads(const AttentionProblem& a) {
  return 2 * a.batch * a.heads * a.queries * a.keys * a.head_dim >= kParallelMinWork;
}

// The band of batch row b's causal products (see Band), or kDense. Query t sees keys
// j < t + lead. The band needs the hidden keys' probabilities to be exactly 0: a masked_score
// that vanishes, and no query that sees only padding (its p is uniform over all S keys, hidden
// ones too, as its scores are all the same constant). Such a query is the first one, if any, so
// that is the case when the keys query 0 sees are all padding.
struct RowBands {
  Band scores = kDense;           // (T, D)·(D, S): q·kᵀ, g·vᵀ
  Band by_queries = kDense;       // (T, S)·(S, D): dropout(p)·v, ds·k
  Band by_keys = kDense;          // (S, T)·(T, D): dsᵀ·q, dropout(p)ᵀ·g
  bool banded = false;
};
RowBands row_bands(const AttentionProblem& a, const float* mask_row) {
  RowBands r;
  if (!a.causal || !(a.masked_score <= kVanishingScore)) return r;
  const int64_t lead = a.keys - a.queries + 1;  // >= 1: causal needs S >= T
  if (mask_row && std::all_of(mask_row, mask_row + lead, [](float m) { return m != 0.0f; })) return r;
  r.scores = Band{-Band::kNone, Band::kNone, lead};
  r.by_queries = Band{-Band::kNone, lead, Band::kNone};
  r.by_keys = Band{1 - lead, Band::kNone, Band::kNone};
  r.banded = true;
  return r;
}

// The keys [0, width) a query's softmax runs over: all S, or where the band applies its visible
// keys rounded up to whole vectors of 16 (the hidden ones among them masked, so exactly 0 after
// the softmax). Rows of every length from 1 to S left up to 15 values per row to the scalar tail
// of each vector loop, which cost more than the keys saved.
inline int64_t softmax_width(const RowBands& bands, int64_t visible, int64_t S) {
  if (!bands.banded) return S;
  const int64_t rounded = (visible + kLaneCount - 1) / kLaneCount * kLaneCount;
  return rounded < S ? rounded : S;
}

}  // namespace

void attention_forward(const AttentionProblem& a, float* probs, float* out) {
  const float masked_score = a.masked_score;
  const int64_t B = a.batch, T = a.queries, S = a.keys, H = a.heads, D = a.head_dim, C = H * D;
#pragma omp parallel if (worth_threads(a))
  {
    // The row's keys turned to (C, S) in one pass over contiguous memory, so that each head's
    // scores are a plain (T, D)·(D, S) product; and dropout(p) (T, S) of one head.
    std::vector<float> kT(static_cast<size_t>(C * S)), weights(static_cast<size_t>(T * S));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      const float* mask_row = a.key_padding_mask ? a.key_padding_mask + b * S : nullptr;
      const RowBands bands = row_bands(a, mask_row);
      transpose_block(a.k + b * S * C, S, C, C, kT.data());
      for (int64_t h = 0; h < H; ++h) {
        const int64_t pair = b * H + h;
        const float* q = a.q + b * T * C + h * D;  // (T, D), row stride C
        const float* v = a.v + b * S * C + h * D;  // (S, D), row stride C
        float* p = probs + pair * T * S;           // (T, S)
        // Where the band applies, only the visible keys' scores are computed and the softmax runs
        // over them (softmax_width); p and the weights are 0 past them, as exp(masked − max) is.
        small_nn(T, S, D, rows_of(q, C), kT.data() + h * D * S, S, p, S, false, bands.scores);
        for (int64_t t = 0; t < T; ++t) {
          float* pt = p + t * S;
          const int64_t visible = visible_keys(a, t), width = softmax_width(bands, visible, S);
          for (int64_t j = visible; j < width; ++j) pt[j] = masked_score;
          if (mask_row)
            for (int64_t j = 0; j < width; ++j) pt[j] = mask_row[j] != 0.0f ? masked_score : pt[j];
          softmax_in_place(pt, width);
          std::fill(pt + width, pt + S, 0.0f);
          float* w = weights.data() + t * S;  // dropout(p)
          dropout_factors(a, static_cast<uint64_t>((pair * T + t) * S), width, w);
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) w[j] *= pt[j];
          std::fill(w + width, w + S, 0.0f);
        }
        small_nn(T, D, S, rows_of(weights.data(), S), v, C, out + b * T * C + h * D, C, false,
                 bands.by_queries);  // Σ_j w_j v_j
      }
    }
  }
}

void attention_backward(const AttentionProblem& a, const float* probs, const float* dout, float* dq,
                        float* dk, float* dv) {
  const int64_t B = a.batch, T = a.queries, S = a.keys, H = a.heads, D = a.head_dim, C = H * D;
#pragma omp parallel if (worth_threads(a))
  {
    std::vector<float> vT(static_cast<size_t>(C * S));  // (C, S) values of the row
    std::vector<float> keep(static_cast<size_t>(T * S)), ds(static_cast<size_t>(T * S));  // (T, S)
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      const float* mask_row = a.key_padding_mask ? a.key_padding_mask + b * S : nullptr;
      const RowBands bands = row_bands(a, mask_row);
      transpose_block(a.v + b * S * C, S, C, C, vT.data());
      for (int64_t h = 0; h < H; ++h) {
        const int64_t pair = b * H + h;
        const float* q = a.q + b * T * C + h * D;   // (T, D), row stride C
        const float* k = a.k + b * S * C + h * D;   // (S, D), row stride C
        const float* g = dout + b * T * C + h * D;  // (T, D), row stride C
        const float* p = probs + pair * T * S;      // (T, S)
        // dp = dropout(g · vᵀ); ds_tj = p_tj (dp_tj - Σ_i p_ti dp_ti), 0 where j is hidden from
        // t (its score was a constant, whatever p is: a query that sees nothing has p uniform)
        small_nn(T, S, D, rows_of(g, C), vT.data() + h * D * S, S, ds.data(), S, false, bands.scores);
        for (int64_t t = 0; t < T; ++t) {
          const float* pt = p + t * S;
          float* kt = keep.data() + t * S;
          float* dst = ds.data() + t * S;
          const int64_t visible = visible_keys(a, t), width = softmax_width(bands, visible, S);
          if (bands.banded) std::fill(dst + visible, dst + width, 0.0f);  // maybe not computed
          dropout_factors(a, static_cast<uint64_t>((pair * T + t) * S), width, kt);
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) dst[j] *= kt[j];
          const float dot = dot_of(pt, dst, width);
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) {
            dst[j] = j >= visible ? 0.0f : pt[j] * (dst[j] - dot);
            kt[j] *= pt[j];  // now dropout(p)
          }
          std::fill(dst + width, dst + S, 0.0f);
          std::fill(kt + width, kt + S, 0.0f);
          if (mask_row)
            for (int64_t j = 0; j < width; ++j) dst[j] = mask_row[j] != 0.0f ? 0.0f : dst[j];
        }
        if (dq)  // += ds·k
          small_nn(T, D, S, rows_of(ds.data(), S), k, C, dq + b * T * C + h * D, C, true, bands.by_queries);
        if (dk)  // += dsᵀ·q
          small_nn(S, D, T, columns_of(ds.data(), S), q, C, dk + b * S * C + h * D, C, true, bands.by_keys);
        if (dv)  // += dropout(p)ᵀ·g
          small_nn(S, D, T, columns_of(keep.data(), S), g, C, dv + b * S * C + h * D, C, true,
                   bands.by_keys);
      }
    }
  }
}

// ---- A decoding step over a cache

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
constexpr int64_t kCachedAttentionParallelWork = int64_t{1} << 20;

}  // namespace

void attend_cached(const CachedAttention& a, float masked_score) {
  const int64_t N = a.rows, T = a.queries, H = a.heads, D = a.head_dim, L = a.length, C = H * D;
  // Two passes over L·C cached floats per query: a step at batch 1 is far below what pays for
  // waking a second thread through an OpenMP region (2^20 multiply-adds, the threshold the
  // one-row products had before they moved to parallel_chunks, for work alike).
  const bool parallel = 2 * N * T * L * C >= kCachedAttentionParallelWork;
#pragma omp parallel if (parallel)
  {
    // (H, L) scores, then probabilities; kept from step to step, so a step allocates nothing.
    thread_local std::vector<float> p;
    p.resize(static_cast<size_t>(H * L));
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
            const float s = dot_of(q + h * D, kl + h * D, D);
            p[h * L + l] = mask && mask[l] != 0.0f ? masked_score : s;
          }
        }
        for (int64_t h = 0; h < H; ++h) softmax_in_place(p.data() + h * L, S);
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
