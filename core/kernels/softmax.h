// Row-wise softmax, log-softmax and the fused label-smoothed cross-entropy, on raw buffers.
//
// Every function works on `rows` independent rows of length V, stored one after another. The
// fast versions split rows over OpenMP threads when the work is large (each row is handled by
// exactly one thread with the same code, so the results do not depend on the thread count) and
// keep their inner loops vectorisable; fast_exp below exists because std::exp is a library call
// that stops the compiler from vectorising a loop. Beside each fast function stands a *_reference
// loop in double that the tests compare against. The Tensor ops built on these, with their
// autograd, are in core/ops/softmax.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "core/kernels/reduce.h"

namespace payless::kernels {

// exp(x) in float, inlined and vectorisable, within 2 ulp of the true value.
//   x = n·ln2 + r with n an integer and |r| <= ln2/2, so exp(x) = 2^n · exp(r).
//   exp(r) is its Taylor series to r⁷/7! (the first dropped term is below 1.2e-8 · exp(r), under
//   float's rounding), and 2^n is written straight into the exponent bits.
// Below -87.33 (exp(x) < FLT_MIN) it returns 0; above 88.37 it returns +inf (the last 0.35 below
// the true overflow at 88.72 is given up to keep 2^n a normal float). NaN stays NaN.
// Written once for a float (fast_exp) and for 16 of them (fast_exp_lanes, for the short rows of
// attention, where a loop over 16 or 32 values left to `omp simd` spends more on its prologue,
// epilogue and masks than on the exps): V is float or Lanes16, Bits the unsigned integers of the
// same shape. `V{} + c` is the constant c in every lane. The same steps give the same bits lane
// by lane, which the tests check.
// (Built without AVX-512, GCC warns that a 64-byte vector is returned differently; all of this is
// inlined, so no call crosses that difference.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename V, typename Bits>
inline V fast_exp_steps(V x) {
  const V low = V{} + -87.33f, high = V{} + 88.37f;
  constexpr float kLog2e = 1.44269504088896341f;
  // ln2 split in two: n·kLn2Hi is exact in float (kLn2Hi has few mantissa bits), so r keeps its
  // low digits.
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  // Adding 1.5·2^23 rounds to an integer that lands in the low mantissa bits of the sum.
  constexpr float kRound = 12582912.0f;
  V xc = x < low ? low : x;
  xc = xc > high ? high : xc;  // written as compares so NaN passes through
  const V t = xc * kLog2e + kRound;
  const V n = t - kRound;  // round(x / ln2)
  V r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  V p = V{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // The low 9 bits of t's bit pattern hold n (mod 512); n + 127 in [1, 254] is 2^n's exponent.
  Bits bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = (bits + 127u) << 23;
  V two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  V y = p * two_n;
  y = x < low ? V{} : y;
  return x > high ? V{} + std::numeric_limits<float>::infinity() : y;
}

inline float fast_exp(float x) { return fast_exp_steps<float, uint32_t>(x); }

typedef uint32_t Bits16 __attribute__((vector_size(64)));
inline Lanes16 fast_exp_lanes(Lanes16 x) { return fast_exp_steps<Lanes16, Bits16>(x); }
#pragma GCC diagnostic pop

// y = softmax(x) per row:  y[v] = exp(x[v] − m) / Σ_u exp(x[u] − m),  m = max_u x[u].
// Subtracting the max changes nothing mathematically and keeps every exp in [0, 1].
void softmax_rows(const float* x, float* y, int64_t rows, int64_t V);
void softmax_rows_reference(const float* x, float* y, int64_t rows, int64_t V);

// y = log_softmax(x) per row:  y[v] = x[v] − m − log Σ_u exp(x[u] − m).
void log_softmax_rows(const float* x, float* y, int64_t rows, int64_t V);
void log_softmax_rows_reference(const float* x, float* y, int64_t rows, int64_t V);

// Softmax backward, from its output y:  dx += y ⊙ (dy − Σ_v dy[v]·y[v]).
//   (∂y_v/∂x_u = y_v(δ_vu − y_u), so dx_u = Σ_v dy_v y_v (δ_vu − y_u) = y_u (dy_u − Σ_v dy_v y_v).)
// The backward kernels take `fresh`: dx is a new, uninitialised gradient buffer to assign
// (Tensor::grad_target) instead of adding into. The references always add.
void softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows, int64_t V,
                           bool fresh = false);
void softmax_backward_rows_reference(const float* y, const float* dy, float* dx, int64_t rows,
                                     int64_t V);

// Log-softmax backward, from its output y = log p:  dx += dy − p ⊙ Σ_v dy[v],  p = exp(y).
//   (∂y_v/∂x_u = δ_vu − p_u.)
void log_softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows,
                               int64_t V, bool fresh = false);
void log_softmax_backward_rows_reference(const float* y, const float* dy, float* dx, int64_t rows,
                                         int64_t V);

// Label-smoothed cross-entropy, fused with the log-softmax, for one row of logits x and gold
// class y, with lp = log_softmax(x):
//     loss = target_weight · (−lp[y]) + uniform_weight · Σ_v (−lp[v])
// which is the cross-entropy −Σ_v q[v]·lp[v] against q[v] = uniform_weight + target_weight·[v = y]
// (core/ops.h gives the two weightings, spec §7). Rows whose target is ignore_index get loss 0,
// nll 0 and lse 0. Otherwise the caller guarantees 0 <= target < V.
// Outputs per row: loss[r]; nll[r] = −lp[y]; lse[r] = log Σ_v exp(x[v]), saved for backward.
// −lp[v] = lse − x[v] is computed as (m − x[v]) + log s, a sum of non-negative terms.
struct SmoothingWeights {
  float target_weight;   // on −lp[y]
  float uniform_weight;  // on Σ_v −lp[v]
};
void cross_entropy_rows(const float* logits, const int32_t* targets, int64_t rows, int64_t V,
                        int32_t ignore_index, SmoothingWeights w, float* loss, float* nll,
                        float* lse);
void cross_entropy_rows_reference(const float* logits, const int32_t* targets, int64_t rows,
                                  int64_t V, int32_t ignore_index, SmoothingWeights w, float* loss,
                                  float* nll, float* lse);

// Backward of the summed loss, scaled by g:  dlogits[r, v] += g · (p[v] − q[v]) on kept rows
// (ignored rows get 0 when dlogits is fresh),
// with p = exp(x − lse) recomputed from the saved lse (cheaper than keeping p, the size of the
// logits). This is the gradient because Σ_v q[v] = 1:  ∂/∂x_u (−Σ_v q_v lp_v) = p_u Σ_v q_v − q_u.
void cross_entropy_backward_rows(const float* logits, const int32_t* targets, const float* lse,
                                 int64_t rows, int64_t V, int32_t ignore_index, SmoothingWeights w,
                                 float g, float* dlogits, bool fresh = false);
void cross_entropy_backward_rows_reference(const float* logits, const int32_t* targets,
                                           const float* lse, int64_t rows, int64_t V,
                                           int32_t ignore_index, SmoothingWeights w, float g,
                                           float* dlogits);

}  // namespace payless::kernels
