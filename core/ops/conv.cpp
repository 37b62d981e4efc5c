// The paper's two convolutions as autograd ops: lightweight_conv (one (H, K) kernel shared by every
// position) and dynamic_conv (a fresh (H, K) kernel per position), plus their one-step forms for
// incremental decoding.
//
// What this is: argument checks, output allocation and the backward closures; the loops are the
// raw-pointer kernels in core/kernels/conv.h. What this is not: the softmax over the K taps, the
// DropConnect and DynamicConv's kernel generator are ordinary ops (softmax, dropout, linear)
// composed by the layers (layers/lightweight_conv.h, layers/dynamic_conv.h), so their gradients
// come from those ops and these closures stay small. Math: spec-lightconv.md §1.5, §2.1, §3.
#include "core/autograd.h"
#include "core/kernels/conv.h"
#include "core/ops.h"

namespace payless {
namespace {

// Checks what both ops share and returns (B, T, C). `op` and the tensors' descriptions go into
// every message, so a user sees which call and which tensor was wrong.
void check_input(const char* op, const Tensor& x) {
  if (!x.defined()) fail(op, ": input x is undefined");
  if (x.rank() != 3) fail(op, ": input x must be (B, T, C), got ", x.describe());
}

void check_heads_and_padding(const char* op, const Tensor& x, const Tensor& w, int64_t H, int64_t K,
                             int64_t padding_l) {
  const int64_t C = x.size(2);
  if (H < 1 || K < 1) fail(op, ": kernel ", w.describe(), " needs at least one head and one tap");
  if (C % H != 0)
    fail(op, ": channels C = ", C, " of x ", x.describe(), " are not divisible by the H = ", H,
         " heads of ", w.describe(), " (each head owns C/H contiguous channels)");
  if (padding_l < 0 || padding_l > K - 1)
    fail(op, ": padding_l = ", padding_l, " must be in [0, K-1] = [0, ", K - 1, "] for kernel ",
         w.describe(), " (K-1 causal, K/2 centred)");
}

}  // namespace

// ---- lightweight_conv -------------------------------------------------------------------------
// y[b,t,c] = Σ_k w[h(c),k] · x[b,t+k-P,c]   (zeros outside [0, T)), h(c) = c / (C/H).
Tensor lightweight_conv(const Tensor& x, const Tensor& weight, int64_t padding_l) {
  check_input("lightweight_conv", x);
  if (!weight.defined() || weight.rank() != 2)
    fail("lightweight_conv: weight must be (H, K), got ",
         weight.defined() ? weight.describe() : std::string("an undefined tensor"));
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t H = weight.size(0), K = weight.size(1), P = padding_l;
  check_heads_and_padding("lightweight_conv", x, weight, H, K, P);

  Tensor y = Tensor::empty({B, T, C});  // (B, T, C)
  kernels::lightweight_conv_forward(x.data(), weight.data(), y.data(), B, T, C, H, K, P);
  if (needs_grad(x, weight)) {
    // Backward (spec §3.1), both in the kernel:
    //   ∂x[b,s,c] += Σ_k w[h(c),k] · gy[b,s-k+P,c]                 (the kernel read backwards)
    //   ∂w[h,k]   += Σ_{b,t} Σ_{c in h} gy[b,t,c] · x[b,t+k-P,c]   (a reduction over b, t, c)
    // x and the (already normalised) weight are all it needs; the softmax and the DropConnect
    // that produced the weight have their own closures upstream.
    record(y, [x, weight, B, T, C, H, K, P](const Tensor& dy) {
      float* gx = x.requires_grad() ? x.grad_ptr() : nullptr;
      float* gw = weight.requires_grad() ? weight.grad_ptr() : nullptr;
      kernels::lightweight_conv_backward(x.data(), weight.data(), dy.data(), gx, gw, B, T, C, H, K,
                                         P);
    });
  }
  return y;
}

// ---- dynamic_conv -----------------------------------------------------------------------------
// y[b,t,c] = Σ_k a[b,t,h(c),k] · x[b,t+k-P,c]   (zeros outside [0, T)).
Tensor dynamic_conv(const Tensor& x, const Tensor& weights, int64_t padding_l) {
  check_input("dynamic_conv", x);
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  if (!weights.defined() || weights.rank() != 4 || weights.size(0) != B || weights.size(1) != T)
    fail("dynamic_conv: weights must be (B, T, H, K) = (", B, ", ", T, ", H, K) to match x ",
         x.describe(), ", got ",
         weights.defined() ? weights.describe() : std::string("an undefined tensor"));
  const int64_t H = weights.size(2), K = weights.size(3), P = padding_l;
  check_heads_and_padding("dynamic_conv", x, weights, H, K, P);

  Tensor y = Tensor::empty({B, T, C});  // (B, T, C)
  kernels::dynamic_conv_forward(x.data(), weights.data(), y.data(), B, T, C, H, K, P);
  if (needs_grad(x, weights)) {
    // Backward (spec §3.2), both in the kernel:
    //   ∂x[b,s,c]   += Σ_k a[b,s-k+P,h(c),k] · gy[b,s-k+P,c]
    //   ∂a[b,t,h,k] += Σ_{c in h} gy[b,t,c] · x[b,t+k-P,c]       (a length-R dot product)
    // When the weights were predicted from x itself (DynamicConv's default), the second path
    // into x -- through the generator -- is added by the linear op's own closure.
    record(y, [x, weights, B, T, C, H, K, P](const Tensor& dy) {
      float* gx = x.requires_grad() ? x.grad_ptr() : nullptr;
      float* ga = weights.requires_grad() ? weights.grad_ptr() : nullptr;
      kernels::dynamic_conv_backward(x.data(), weights.data(), dy.data(), gx, ga, B, T, C, H, K, P);
    });
  }
  return y;
}

// ---- one decoding step ------------------------------------------------------------------------
namespace {

void check_window(const char* op, const Tensor& window) {
  if (!window.defined() || window.rank() != 3)
    fail(op, ": window must be (N, j, C), got ",
         window.defined() ? window.describe() : std::string("an undefined tensor"));
}

// Shared checks of the two step ops (after check_window); returns j, the number of inputs in the
// window.
int64_t check_step(const char* op, const Tensor& window, const Tensor& weight, int64_t H,
                   int64_t K) {
  const int64_t j = window.size(1), C = window.size(2);
  if (H < 1 || K < 1) fail(op, ": kernel ", weight.describe(), " needs at least one head and one tap");
  if (C % H != 0)
    fail(op, ": channels C = ", C, " of window ", window.describe(),
         " are not divisible by the H = ", H, " heads of ", weight.describe());
  if (j < 1 || j > K)
    fail(op, ": window ", window.describe(), " must hold between 1 and K = ", K,
         " inputs (the newest last)");
  // A step records no backward: refusing here beats returning a value whose gradient is silently
  // missing. Decoding runs under NoGrad.
  if (needs_grad(window, weight))
    fail(op, ": incremental decoding is inference only; call it inside a NoGrad scope");
  return j;
}

}  // namespace

Tensor lightweight_conv_step(const Tensor& window, const Tensor& weight) {
  check_window("lightweight_conv_step", window);
  if (!weight.defined() || weight.rank() != 2)
    fail("lightweight_conv_step: weight must be (H, K), got ",
         weight.defined() ? weight.describe() : std::string("an undefined tensor"));
  const int64_t H = weight.size(0), K = weight.size(1);
  const int64_t j = check_step("lightweight_conv_step", window, weight, H, K);
  const int64_t N = window.size(0), C = window.size(2);
  Tensor y = Tensor::empty({N, 1, C});  // (N, 1, C)
  kernels::lightweight_conv_step(window.data(), weight.data(), y.data(), N, C, H, K, j);
  return y;
}

Tensor dynamic_conv_step(const Tensor& window, const Tensor& weights) {
  check_window("dynamic_conv_step", window);
  const int64_t N = window.size(0);
  if (!weights.defined() || weights.rank() != 3 || weights.size(0) != N)
    fail("dynamic_conv_step: weights must be (N, H, K) with N = ", N, " as in the window, got ",
         weights.defined() ? weights.describe() : std::string("an undefined tensor"));
  const int64_t H = weights.size(1), K = weights.size(2);
  const int64_t j = check_step("dynamic_conv_step", window, weights, H, K);
  const int64_t C = window.size(2);
  Tensor y = Tensor::empty({N, 1, C});  // (N, 1, C)
  kernels::dynamic_conv_step(window.data(), weights.data(), y.data(), N, C, H, K, j);
  return y;
}

}  // namespace payless
