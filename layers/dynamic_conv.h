// DynamicConv (spec §2): a depth-wise convolution over time whose H×K kernel is predicted afresh at
// every position from the input at that same position, then softmax-normalised over its K taps.
//
//   L[b,t,h·K+k] = Σ_i Wq[h·K+k, i] · x[b,t,i]       weight_linear: C -> H·K, no bias, head-major rows
//   A[b,t,h,:]   = softmax_k(L[b,t,h,:])
//   Ã = DropConnect(A)                               training only: per (b, t, h, k), 1/(1-p), no renormalisation
//   y[b,t,c]     = Σ_k Ã[b,t,h(c),k] · x[b,t+k-P,c]   (+ conv_bias[c])       h(c) = c / (C/H)
//
// x feeds both the convolution and the kernel generator, so ∂x has two paths; the autograd adds
// them (spec §3.2). Parameters (names as the reference, spec §4.9): `weight_linear.weight`
// (H·K, C); `conv_bias` (C) only if asked for (the paper's models never do).
// What this is not: the loops (core/kernels/conv.h behind the dynamic_conv op) or the block around
// the conv (layers/conv_layers.h). The kernel is always predicted from x itself; fairseq's
// separate query and in_proj options are unused by every model and not offered.
#pragma once

#include <cstdint>

#include "core/rng.h"
#include "layers/conv_common.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace payless {

class DynamicConv : public Module {
 public:
  // padding_l: K-1 for a causal (decoder) conv, K/2 for a centred (encoder) one. weight_linear is
  // Xavier-uniform, bound sqrt(6 / (C + H·K)) (spec §2.6).
  DynamicConv(int64_t channels, int64_t kernel_size, int64_t heads, int64_t padding_l,
              bool weight_softmax = true, float weight_dropout = 0.0f, bool bias = false,
              Rng& rng = global_rng());

  // x (B, T, C) -> (B, T, C). In training with weight_dropout > 0 the DropConnect mask is drawn
  // from `rng` (one stream per call).
  Tensor forward(const Tensor& x, Rng& rng = global_rng()) const;

  // One causal decoding step (spec §2.5): x (N, 1, C) -> (N, 1, C), advancing `state`. The kernel
  // comes from this step's x only, softmax over all K taps, of which the window meets the last j.
  // Equal to row t of forward() on the whole prefix. Inference: records nothing and applies no
  // DropConnect (so it refuses training mode with weight_dropout > 0). Needs padding_l = K-1.
  Tensor step(const Tensor& x, ConvState& state) const;

  // A (B, T, H, K): the normalised kernels forward() uses before DropConnect.
  Tensor kernel_weights(const Tensor& x) const;

  const int64_t channels, kernel_size, heads, padding_l;
  const bool weight_softmax;
  const float weight_dropout;
  Linear weight_linear;  // C -> H·K, no bias; output h·K + k is tap k of head h
  Tensor conv_bias;      // (C), undefined unless constructed with bias = true
};

}  // namespace payless
