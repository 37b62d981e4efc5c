// See core/kernels/norm.h.
#include "core/kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/kernels/elementwise.h"
#include "core/parallel.h"

namespace payless::kernels {
namespace {

// Rows per chunk of the parameter-gradient partial sums. Fixed (not derived from the thread
// count) so that the summation order, and with it every bit of dgamma and dbeta, is fixed too.
constexpr int64_t kRowsPerChunk = 32;

}  // namespace

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, int64_t rows, int64_t C, float eps) {
  const float inv_c = 1.0f / static_cast<float>(C);
#pragma omp parallel for schedule(static) if (rows * C > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    // Two passes (mean, then squared deviations) rather than E[x²] − E[x]², which cancels
    // catastrophically when the mean is large next to the spread.
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += xr[c];
    const float mu = s * inv_c;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; ++c) ss += (xr[c] - mu) * (xr[c] - mu);
    const float rs = 1.0f / std::sqrt(ss * inv_c + eps);
    mean[r] = mu;
    rstd[r] = rs;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * rs;
    if (gamma) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] *= gamma[c];
    }
    if (beta) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] += beta[c];
    }
  }
}

void layer_norm_forward_reference(const float* x, const float* gamma, const float* beta, float* y,
                                  float* mean, float* rstd, int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double mu = 0.0, var = 0.0;
    for (int64_t c = 0; c < C; ++c) mu += xr[c];
    mu /= double(C);
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    var /= double(C);
    const double rs = 1.0 / std::sqrt(var + eps);
    mean[r] = static_cast<float>(mu);
    rstd[r] = static_cast<float>(rs);
    for (int64_t c = 0; c < C; ++c) {
      double v = (xr[c] - mu) * rs;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      y[r * C + c] = static_cast<float>(v);
    }
  }
}

void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, bool dx_fresh) {
  const float inv_c = 1.0f / static_cast<float>(C);
  const bool params = dgamma || dbeta;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  // Per chunk: C partial sums for dgamma, then C for dbeta.  (chunks, 2, C)
  std::vector<float> partial(params ? chunks * 2 * C : 0, 0.0f);

#pragma omp parallel for schedule(static) if (rows * C > kParallelMinWork)
  for (int64_t k = 0; k < chunks; ++k) {
    float* pg = params ? partial.data() + k * 2 * C : nullptr;
    float* pb = params ? pg + C : nullptr;
    const int64_t end = std::min(rows, (k + 1) * kRowsPerChunk);
    for (int64_t r = k * kRowsPerChunk; r < end; ++r) {
      const float *xr = x + r * C, *gr = dy + r * C;
      const float mu = mean[r], rs = rstd[r];
      if (params) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          pg[c] += gr[c] * ((xr[c] - mu) * rs);
          pb[c] += gr[c];
        }
      }
      if (!dx) continue;
      float sum_g = 0.0f, sum_gx = 0.0f;  // Σ dŷ and Σ dŷ ⊙ x̂
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t c = 0; c < C; ++c) {
        const float g = gamma ? gr[c] * gamma[c] : gr[c];
        sum_g += g;
        sum_gx += g * ((xr[c] - mu) * rs);
      }
      const float mean_g = sum_g * inv_c, mean_gx = sum_gx * inv_c;
      float* dxr = dx + r * C;
      write_or_add_row(dxr, dx_fresh, C, [&](int64_t c) {
        const float g = gamma ? gr[c] * gamma[c] : gr[c];
        return rs * (g - mean_g - (xr[c] - mu) * rs * mean_gx);
      });
    }
  }

  // The chunks' partial sums, added in chunk order.
  for (int64_t k = 0; k < chunks && params; ++k) {
    const float* pg = partial.data() + k * 2 * C;
    const float* pb = pg + C;
    if (dgamma)
      for (int64_t c = 0; c < C; ++c) dgamma[c] += pg[c];
    if (dbeta)
      for (int64_t c = 0; c < C; ++c) dbeta[c] += pb[c];
  }
}

void layer_norm_backward_reference(const float* x, const float* gamma, const float* mean,
                                   const float* rstd, const float* dy, float* dx, float* dgamma,
                                   float* dbeta, int64_t rows, int64_t C) {
  std::vector<double> xhat(C), g(C), sum_gamma(C, 0.0), sum_beta(C, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mean_g = 0.0, mean_gx = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      xhat[c] = (double(x[r * C + c]) - mean[r]) * rstd[r];
      g[c] = double(dy[r * C + c]) * (gamma ? gamma[c] : 1.0f);
      mean_g += g[c];
      mean_gx += g[c] * xhat[c];
      sum_gamma[c] += double(dy[r * C + c]) * xhat[c];
      sum_beta[c] += dy[r * C + c];
    }
    mean_g /= double(C);
    mean_gx /= double(C);
    if (dx)
      for (int64_t c = 0; c < C; ++c)
        dx[r * C + c] += static_cast<float>(rstd[r] * (g[c] - mean_g - xhat[c] * mean_gx));
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] += static_cast<float>(sum_gamma[c]);
    if (dbeta) dbeta[c] += static_cast<float>(sum_beta[c]);
  }
}

}  // namespace payless::kernels
