// See core/kernels/softmax.h. Each fast function is a loop over rows (split over threads when
// rows·V is large) around a row function whose inner loops are `omp simd` reductions, which lets
// the compiler vectorise float sums it would otherwise have to keep in order.
#include "core/kernels/softmax.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/kernels/elementwise.h"
#include "core/parallel.h"

namespace payless::kernels {
namespace {

// log Σ_v exp(x[v]) for the reference loops, in double.
double log_sum_exp_reference(const float* x, int64_t V) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < V; ++v) m = std::max(m, double(x[v]));
  double s = 0.0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(double(x[v]) - m);
  return m + std::log(s);
}

// Rows of at most 16 values (the K taps of a dynamic convolution's weights): one row per vector,
// padded. A row that short leaves every vector loop above to its scalar tail and its reduction
// epilogue; one padded vector per row was 2.7x (K = 3) to 3.8x (K = 15) as fast.
constexpr int64_t kShortRow = 16;

// block[0..16) = x[0..V), then `pad` (V <= 16). The index is clamped so that no lane reads past
// the row (the last row may end the buffer), and the loop still vectorises.
inline void load_padded(const float* x, int64_t V, float pad, float* block) {
#pragma omp simd
  for (int64_t l = 0; l < kShortRow; ++l) block[l] = l < V ? x[l < V ? l : 0] : pad;
}

void softmax_short_row(const float* x, float* y, int64_t V) {
  float block[kShortRow];
  load_padded(x, V, -std::numeric_limits<float>::infinity(), block);  // exp(−inf) = 0
  const float m = max_of(block, kShortRow);
#pragma omp simd
  for (int64_t l = 0; l < kShortRow; ++l) block[l] = fast_exp(block[l] - m);
  const float inv = 1.0f / sum_of(block, kShortRow);
  for (int64_t v = 0; v < V; ++v) y[v] = block[v] * inv;
}

}  // namespace

// ---------------------------------------------------------------- softmax

void softmax_rows(const float* x, float* y, int64_t rows, int64_t V) {
  if (V <= kShortRow) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
    for (int64_t r = 0; r < rows; ++r) softmax_short_row(x + r * V, y + r * V, V);
    return;
  }
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * V;
    float* yr = y + r * V;
    const float m = max_of(xr, V);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) {
      float e = fast_exp(xr[v] - m);
      yr[v] = e;
      s += e;
    }
    const float inv = 1.0f / s;  // s >= 1: the max term is exp(0)
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) yr[v] *= inv;
  }
}

void softmax_rows_reference(const float* x, float* y, int64_t rows, int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    const double lse = log_sum_exp_reference(x + r * V, V);
    for (int64_t v = 0; v < V; ++v) y[r * V + v] = static_cast<float>(std::exp(x[r * V + v] - lse));
  }
}

void log_softmax_rows(const float* x, float* y, int64_t rows, int64_t V) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * V;
    float* yr = y + r * V;
    const float m = max_of(xr, V);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += fast_exp(xr[v] - m);
    const float log_s = std::log(s);
    // (x − m) − log s rather than x − (m + log s): x − m is exact for nearby values.
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) yr[v] = (xr[v] - m) - log_s;
  }
}

void log_softmax_rows_reference(const float* x, float* y, int64_t rows, int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    const double lse = log_sum_exp_reference(x + r * V, V);
    for (int64_t v = 0; v < V; ++v) y[r * V + v] = static_cast<float>(x[r * V + v] - lse);
  }
}

void softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows, int64_t V,
                           bool fresh) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float *yr = y + r * V, *gr = dy + r * V;
    float* dxr = dx + r * V;
    float dot = 0.0f;  // Σ dy ⊙ y
    if (V <= kShortRow) {  // see softmax_short_row
      float yb[kShortRow], gb[kShortRow];
      load_padded(yr, V, 0.0f, yb);
      load_padded(gr, V, 0.0f, gb);
      dot = dot_of(yb, gb, kShortRow);
    } else {
#pragma omp simd reduction(+ : dot)
      for (int64_t v = 0; v < V; ++v) dot += gr[v] * yr[v];
    }
    write_or_add_row(dxr, fresh, V, [&](int64_t v) { return yr[v] * (gr[v] - dot); });
  }
}

void softmax_backward_rows_reference(const float* y, const float* dy, float* dx, int64_t rows,
                                     int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0.0;
    for (int64_t v = 0; v < V; ++v) dot += double(dy[r * V + v]) * y[r * V + v];
    for (int64_t v = 0; v < V; ++v)
      dx[r * V + v] += static_cast<float>(y[r * V + v] * (dy[r * V + v] - dot));
  }
}

void log_softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows,
                               int64_t V, bool fresh) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float *yr = y + r * V, *gr = dy + r * V;
    float* dxr = dx + r * V;
    float total = 0.0f;  // Σ dy
#pragma omp simd reduction(+ : total)
    for (int64_t v = 0; v < V; ++v) total += gr[v];
    write_or_add_row(dxr, fresh, V, [&](int64_t v) { return gr[v] - fast_exp(yr[v]) * total; });
  }
}

void log_softmax_backward_rows_reference(const float* y, const float* dy, float* dx, int64_t rows,
                                         int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += dy[r * V + v];
    for (int64_t v = 0; v < V; ++v)
      dx[r * V + v] += static_cast<float>(dy[r * V + v] - std::exp(double(y[r * V + v])) * total);
  }
}

// ---------------------------------------------------------------- cross-entropy

void cross_entropy_rows(const float* logits, const int32_t* targets, int64_t rows, int64_t V,
                        int32_t ignore_index, SmoothingWeights w, float* loss, float* nll,
                        float* lse) {
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t y = targets[r];
    if (y == ignore_index) {
      loss[r] = nll[r] = lse[r] = 0.0f;
      continue;
    }
    PAYLESS_ASSERT(y >= 0 && y < V);  // the op checked the targets
    const float* xr = logits + r * V;
    const float m = max_of(xr, V);
    float s = 0.0f;     // Σ exp(x − m)
    float gaps = 0.0f;  // Σ (m − x), each term >= 0
#pragma omp simd reduction(+ : s, gaps)
    for (int64_t v = 0; v < V; ++v) {
      s += fast_exp(xr[v] - m);
      gaps += m - xr[v];
    }
    const float log_s = std::log(s);
    const float nll_r = (m - xr[y]) + log_s;                    // −lp[y]
    const float all_r = gaps + static_cast<float>(V) * log_s;  // Σ_v −lp[v]
    loss[r] = w.target_weight * nll_r + w.uniform_weight * all_r;
    nll[r] = nll_r;
    lse[r] = m + log_s;
  }
}

void cross_entropy_rows_reference(const float* logits, const int32_t* targets, int64_t rows,
                                  int64_t V, int32_t ignore_index, SmoothingWeights w, float* loss,
                                  float* nll, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t y = targets[r];
    if (y == ignore_index) {
      loss[r] = nll[r] = lse[r] = 0.0f;
      continue;
    }
    PAYLESS_ASSERT(y >= 0 && y < V);
    const float* xr = logits + r * V;
    const double l = log_sum_exp_reference(xr, V);
    double all = 0.0;
    for (int64_t v = 0; v < V; ++v) all += l - xr[v];
    const double nll_r = l - xr[y];
    loss[r] = static_cast<float>(double(w.target_weight) * nll_r + double(w.uniform_weight) * all);
    nll[r] = static_cast<float>(nll_r);
    lse[r] = static_cast<float>(l);
  }
}

void cross_entropy_backward_rows(const float* logits, const int32_t* targets, const float* lse,
                                 int64_t rows, int64_t V, int32_t ignore_index, SmoothingWeights w,
                                 float g, float* dlogits, bool fresh) {
  const float gb = g * w.uniform_weight;
#pragma omp parallel for schedule(static) if (rows * V > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t y = targets[r];
    float* dr = dlogits + r * V;
    if (y == ignore_index) {
      if (fresh) std::fill_n(dr, V, 0.0f);
      continue;
    }
    const float* xr = logits + r * V;
    const float l = lse[r];
    // g·(p[v] − q[v]) with q[v] = uniform_weight + target_weight·[v = y]
    write_or_add_row(dr, fresh, V, [&](int64_t v) { return g * fast_exp(xr[v] - l) - gb; });
    dr[y] -= g * w.target_weight;
  }
}

void cross_entropy_backward_rows_reference(const float* logits, const int32_t* targets,
                                           const float* lse, int64_t rows, int64_t V,
                                           int32_t ignore_index, SmoothingWeights w, float g,
                                           float* dlogits) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t y = targets[r];
    if (y == ignore_index) continue;
    for (int64_t v = 0; v < V; ++v) {
      double p = std::exp(double(logits[r * V + v]) - lse[r]);
      double q = double(w.uniform_weight) + (v == y ? double(w.target_weight) : 0.0);
      dlogits[r * V + v] += static_cast<float>(double(g) * (p - q));
    }
  }
}

}  // namespace payless::kernels
