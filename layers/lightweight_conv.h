// LightweightConv (spec §1): a depth-wise convolution over time whose kernel is shared by every
// position and by the C/H channels of each head, and softmax-normalised over its K taps.
//
//   Ŵ = softmax_k(W)                     W (H, K): one row per head, Ŵ sums to 1 over the K taps
//   W̃ = DropConnect(Ŵ)                   training only: per (b, t, h, k), scaled by 1/(1-p), not renormalised
//   y[b,t,c] = Σ_k W̃[h(c),k] · x[b,t+k-P,c]  (+ bias[c])        h(c) = c / (C/H), zeros outside [0, T)
//
// Parameters (names as the reference, spec §4.9): `weight` (H, K); `bias` (C) only if asked for
// (the paper's models never do). What this is not: the loops (core/kernels/conv.h behind the
// lightweight_conv op, core/ops.h) or the block around the conv (layers/conv_layers.h).
#pragma once

#include <cstdint>

#include "core/rng.h"
#include "layers/conv_common.h"
#include "layers/module.h"

namespace payless {

class LightweightConv : public Module {
 public:
  // padding_l: K-1 for a causal (decoder) conv, K/2 for a centred (encoder) one.
  // weight is Xavier-uniform as the paper-era reference stores it, (H, 1, K): fan_in = K,
  // fan_out = H·K, bound sqrt(6 / (K + H·K)) (spec §1.8).
  LightweightConv(int64_t channels, int64_t kernel_size, int64_t heads, int64_t padding_l,
                  bool weight_softmax = true, float weight_dropout = 0.0f, bool bias = false,
                  Rng& rng = global_rng());

  // x (B, T, C) -> (B, T, C). In training with weight_dropout > 0 the DropConnect mask is drawn
  // from `rng` (one stream per call), one Bernoulli per (b, t, h, k).
  Tensor forward(const Tensor& x, Rng& rng = global_rng()) const;

  // One causal decoding step (spec §1.7): x (N, 1, C) -> (N, 1, C), advancing `state`. Equal to
  // row t of forward() on the whole prefix. Inference: records nothing and applies no
  // DropConnect (so it refuses training mode with weight_dropout > 0). Needs padding_l = K-1.
  Tensor step(const Tensor& x, ConvState& state) const;

  // Ŵ (H, K): softmax of weight over the K taps, or weight itself when weight_softmax is off.
  Tensor normalized_weight() const;

  const int64_t channels, kernel_size, heads, padding_l;
  const bool weight_softmax;
  const float weight_dropout;
  Tensor weight;  // (H, K)
  Tensor bias;    // (C), undefined unless constructed with bias = true
};

}  // namespace payless
