// See layers/lightweight_conv.h for the formula; this file composes ops from core/ops.h.
#include "layers/lightweight_conv.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace payless {

LightweightConv::LightweightConv(int64_t channels, int64_t kernel_size, int64_t heads,
                                 int64_t padding_l, bool weight_softmax, float weight_dropout,
                                 bool bias, Rng& rng)
    : channels(channels),
      kernel_size(kernel_size),
      heads(heads),
      padding_l(padding_l),
      weight_softmax(weight_softmax),
      weight_dropout(weight_dropout) {
  check_conv_options("LightweightConv", channels, kernel_size, heads, padding_l, weight_dropout);
  weight = Tensor::empty({heads, kernel_size});
  const float bound = std::sqrt(6.0f / static_cast<float>(kernel_size + heads * kernel_size));
  rng.uniform_(weight, -bound, bound);
  register_parameter("weight", weight);
  if (bias) {
    this->bias = Tensor::zeros({channels});
    register_parameter("bias", this->bias);
  }
}

Tensor LightweightConv::normalized_weight() const {
  return weight_softmax ? softmax(weight) : weight;  // (H, K), softmax over the last dim = taps
}

Tensor LightweightConv::forward(const Tensor& x, Rng& rng) const {
  check_conv_input("LightweightConv", x, channels, weight);
  const int64_t B = x.size(0), T = x.size(1);
  Tensor w = normalized_weight();  // (H, K)
  Tensor y;
  if (is_training() && weight_dropout > 0.0f) {
    // DropConnect per (b, t, h, k) (spec §1.4) gives every position its own dropped kernel, so the
    // shared kernel becomes a per-position one: the dynamic_conv op with Ŵ repeated over (b, t).
    // expand's backward sums the per-position gradients back into Ŵ.
    Tensor per_position = expand(w, Shape{B, T, heads, kernel_size});  // (B, T, H, K)
    per_position = dropout(per_position, weight_dropout, true, rng);
    y = dynamic_conv(x, per_position, padding_l);  // (B, T, C)
  } else {
    y = lightweight_conv(x, w, padding_l);  // (B, T, C)
  }
  if (bias.defined()) y = add(y, bias);
  return y;
}

Tensor LightweightConv::step(const Tensor& x, ConvState& state) const {
  if (padding_l != kernel_size - 1)
    fail("LightweightConv with ", weight.describe(), ": step() needs a causal conv (padding_l = K-1 = ",
         kernel_size - 1, "), this one has padding_l = ", padding_l);
  check_conv_input("LightweightConv", x, channels, weight);
  if (is_training() && weight_dropout > 0.0f)
    fail("LightweightConv: step() is inference and applies no DropConnect; call eval() before decoding");
  NoGrad no_grad;
  Tensor window = advance_window(state, x, kernel_size);       // (N, j, C)
  Tensor y = lightweight_conv_step(window, normalized_weight());  // (N, 1, C)
  if (bias.defined()) y = add(y, bias);
  return y;
}

}  // namespace payless
