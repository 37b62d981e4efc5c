// Layer normalisation over the last dim, forward and backward, on raw buffers.
//
// x is `rows` rows of C values. The forward pass computes each row's mean and rstd = 1/√(var+eps)
// once and returns them, so the backward pass does not recompute them. The parameter gradients
// (dgamma, dbeta) sum over all rows; to keep them deterministic, rows are cut into fixed chunks
// whose partial sums are added in chunk order, so the bits do not even depend on the thread
// count. Each fast function has a *_reference loop in double beside it for the tests. The Tensor
// op is layer_norm in core/ops/norm.cpp.
#pragma once

#include <cstdint>

namespace payless::kernels {

// Per row:  mean = Σx/C,  var = Σ(x − mean)²/C (biased),  rstd = 1/√(var + eps),
//           x̂ = (x − mean)·rstd,  y = x̂ ⊙ gamma + beta.
// gamma and beta (C) may be null (then 1 and 0). mean and rstd receive one value per row.
void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, int64_t rows, int64_t C, float eps);
void layer_norm_forward_reference(const float* x, const float* gamma, const float* beta, float* y,
                                  float* mean, float* rstd, int64_t rows, int64_t C, float eps);

// Accumulates (+=), with dŷ = dy ⊙ gamma and x̂ rebuilt from the saved mean and rstd:
//   dx     += rstd · (dŷ − mean_c(dŷ) − x̂ · mean_c(dŷ ⊙ x̂))
//   dgamma += Σ_rows dy ⊙ x̂
//   dbeta  += Σ_rows dy
// Any of dx, dgamma, dbeta may be null (not wanted); gamma may be null (all ones).
// Why dx looks like that: x̂ = (x − μ)·rstd depends on every x of the row through μ and rstd;
// ∂μ/∂x_j = 1/C and ∂rstd/∂x_j = −rstd³·(x_j − μ)/C, which after the chain rule leaves the two
// row means above.
// dx_fresh: dx is a new, uninitialised gradient buffer to assign (Tensor::grad_target).
void layer_norm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, bool dx_fresh = false);
void layer_norm_backward_reference(const float* x, const float* gamma, const float* mean,
                                   const float* rstd, const float* dy, float* dx, float* dgamma,
                                   float* dbeta, int64_t rows, int64_t C);

}  // namespace payless::kernels
