// CPU kernels for the paper's two convolutions: LightweightConv (one H×K kernel shared by every
// position) and DynamicConv (a fresh H×K kernel at every position).
//
// What this is: plain functions on raw float pointers, forward and backward, plus one-step helpers
// for incremental decoding, each fast kernel with a plain reference loop beside it (the references
// exist for the tests in tests/test_conv_kernels.cpp; do not call them in training).
// What this is not: no Tensor, no autograd, no softmax, no DropConnect, no kernel generator. The op
// layer (core/ops/) computes the weights (softmax over the K taps, then dropout), checks shapes
// and calls these. The math and its derivation are in /work/shared/spec-lightconv.md §1-§3.
//
// Layout and math, shared by every function here:
//   x, y, gx, gy: (B, T, C) row-major, channels contiguous.
//   H heads, R = C / H channels per head; channel c uses kernel row h(c) = c / R, so head h owns
//   the contiguous channel block [h·R, (h+1)·R).
//   P = padding_l: P = K-1 causal (decoder), P = K/2 centred (encoder, odd K). Inputs outside
//   [0, T) are zeros; no renormalisation.
//
//     Y[b,t,c] = Σ_k  w(b,t,h(c),k) · X[b, t+k-P, c]          over k with 0 <= t+k-P < T
//
//   Dynamic:     w(b,t,h,k) = A[b,t,h,k], A is (B, T, H, K).
//   Lightweight: w(b,t,h,k) = W[h,k],     W is (H, K).
//
// Backward functions ACCUMULATE (+=) into their gradient outputs, like every backward in payless
// (see core/autograd.h); pass nullptr for a gradient that is not needed and its work is skipped.
//
// Cost: every kernel is a direct sliding window, O(B·T·C·K) multiply-adds, linear in T (no
// unfolded copies, no T×T band matrix). The innermost loop runs over the R contiguous channels of
// one head with the tap weight as a scalar, so it vectorises. The outer loop is split over
// threads with OpenMP only when the work exceeds kParallelMinWork multiply-adds.
#pragma once

#include <cstdint>

namespace payless::kernels {

// ---- DynamicConv -------------------------------------------------------------------------------

// y (B, T, C) = dynamic conv of x (B, T, C) with per-position weights a (B, T, H, K). Assigns y.
void dynamic_conv_forward(const float* x, const float* a, float* y, int64_t B, int64_t T, int64_t C,
                          int64_t H, int64_t K, int64_t P);

// Accumulates, given gy = ∂ℓ/∂y (B, T, C):
//   ga[b,t,h,k] += Σ_{c in head h} gy[b,t,c] · x[b,t+k-P,c]           (0 <= t+k-P < T), ga (B, T, H, K)
//   gx[b,s,c]   += Σ_k a[b,s-k+P,h(c),k] · gy[b,s-k+P,c]              (0 <= s-k+P < T), gx (B, T, C)
// gx is computed in this gather form (each output row reads its K neighbours) so rows can be
// split over threads without write races. gx or ga may be nullptr.
void dynamic_conv_backward(const float* x, const float* a, const float* gy, float* gx, float* ga,
                           int64_t B, int64_t T, int64_t C, int64_t H, int64_t K, int64_t P);

// ---- LightweightConv ---------------------------------------------------------------------------

// y (B, T, C) = lightweight conv of x (B, T, C) with shared weights w (H, K). Assigns y.
void lightweight_conv_forward(const float* x, const float* w, float* y, int64_t B, int64_t T,
                              int64_t C, int64_t H, int64_t K, int64_t P);

// Accumulates:
//   gw[h,k]   += Σ_b Σ_t Σ_{c in head h} gy[b,t,c] · x[b,t+k-P,c]    gw (H, K)
//   gx[b,s,c] += Σ_k w[h(c),k] · gy[b,s-k+P,c]                      gx (B, T, C)
// gw is a reduction over (b, t): each thread sums into its own H×K buffer and the buffers are then
// added in thread order, so two runs with the same thread count give bit-identical gw (a different
// thread count may change the last bits). gx or gw may be nullptr.
void lightweight_conv_backward(const float* x, const float* w, const float* gy, float* gx,
                               float* gw, int64_t B, int64_t T, int64_t C, int64_t H, int64_t K,
                               int64_t P);

// ---- Incremental decoding (causal only, one new time step) -------------------------------------
//
// Spec §1.7 and §2.5. The decoder keeps, per hypothesis, the most recent conv inputs; at step t
// (0-based) the window holds the last j = min(t+1, K) inputs, oldest first, the newest x_t last.
// Causal padding (P = K-1) pairs the newest input with tap K-1, so the j inputs use the LAST j taps
// of each head's kernel, K-j .. K-1, and the taps before them would have met zero padding:
//
//     y[n,c] = Σ_{i=0}^{j-1} w(n, h(c), K-j+i) · window[n,i,c]
//
// The weights are NOT renormalised over the j taps: the softmax was taken over all K taps before
// slicing, exactly as in the full causal forward, so y equals row t of that forward.
// N is the number of hypotheses (batch × beam) advanced together; use N = 1 for a single one.

// window (N, j, C), a (N, H, K) = this step's weights per hypothesis, y (N, C). Assigns y.
void dynamic_conv_step(const float* window, const float* a, float* y, int64_t N, int64_t C,
                       int64_t H, int64_t K, int64_t j);

// Same with the shared lightweight kernel: window (N, j, C), w (H, K), y (N, C). Assigns y.
void lightweight_conv_step(const float* window, const float* w, float* y, int64_t N, int64_t C,
                           int64_t H, int64_t K, int64_t j);

// ---- Reference loops (tests only) --------------------------------------------------------------
// The formulas above written as the obvious nested loops: single-threaded, unblocked, slow. Same
// signatures and the same assign/accumulate contract as the fast kernels.

void dynamic_conv_forward_reference(const float* x, const float* a, float* y, int64_t B, int64_t T,
                                    int64_t C, int64_t H, int64_t K, int64_t P);
void dynamic_conv_backward_reference(const float* x, const float* a, const float* gy, float* gx,
                                     float* ga, int64_t B, int64_t T, int64_t C, int64_t H,
                                     int64_t K, int64_t P);
void lightweight_conv_forward_reference(const float* x, const float* w, float* y, int64_t B,
                                        int64_t T, int64_t C, int64_t H, int64_t K, int64_t P);
void lightweight_conv_backward_reference(const float* x, const float* w, const float* gy,
                                         float* gx, float* gw, int64_t B, int64_t T, int64_t C,
                                         int64_t H, int64_t K, int64_t P);

}  // namespace payless::kernels
