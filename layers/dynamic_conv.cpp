// See layers/dynamic_conv.h for the formula; this file composes ops from core/ops.h.
#include "layers/dynamic_conv.h"

#include "core/autograd.h"
#include "core/ops.h"

namespace payless {

DynamicConv::DynamicConv(int64_t channels, int64_t kernel_size, int64_t heads, int64_t padding_l,
                         bool weight_softmax, float weight_dropout, bool bias, Rng& rng)
    : channels(channels),
      kernel_size(kernel_size),
      heads(heads),
      padding_l(padding_l),
      weight_softmax(weight_softmax),
      weight_dropout(weight_dropout),
      weight_linear(channels, heads * kernel_size, /*bias=*/false, rng) {
  // After weight_linear (members are built first), which has already refused non-positive sizes.
  check_conv_options("DynamicConv", channels, kernel_size, heads, padding_l, weight_dropout);
  register_module("weight_linear", weight_linear);
  if (bias) {
    conv_bias = Tensor::zeros({channels});
    register_parameter("conv_bias", conv_bias);
  }
}

Tensor DynamicConv::kernel_weights(const Tensor& x) const {
  check_conv_input("DynamicConv", x, channels, weight_linear.weight);
  const int64_t B = x.size(0), T = x.size(1);
  Tensor logits = weight_linear.forward(x);  // (B, T, H·K)
  Tensor a = reshape(logits, {B, T, heads, kernel_size});  // (B, T, H, K): row h·K+k
  return weight_softmax ? softmax(a) : a;  // softmax over the K taps
}

Tensor DynamicConv::forward(const Tensor& x, Rng& rng) const {
  Tensor a = kernel_weights(x);  // (B, T, H, K)
  // DropConnect after the softmax, one draw per (b, t, h, k), scaled by 1/(1-p) and not
  // renormalised (spec §2.1): plain inverted dropout on A.
  if (is_training() && weight_dropout > 0.0f) a = dropout(a, weight_dropout, true, rng);
  Tensor y = dynamic_conv(x, a, padding_l);  // (B, T, C)
  if (conv_bias.defined()) y = add(y, conv_bias);
  return y;
}

Tensor DynamicConv::step(const Tensor& x, ConvState& state) const {
  if (padding_l != kernel_size - 1)
    fail("DynamicConv with ", weight_linear.weight.describe(),
         ": step() needs a causal conv (padding_l = K-1 = ", kernel_size - 1,
         "), this one has padding_l = ", padding_l);
  if (is_training() && weight_dropout > 0.0f)
    fail("DynamicConv: step() is inference and applies no DropConnect; call eval() before decoding");
  NoGrad no_grad;
  Tensor a = kernel_weights(x);  // (N, 1, H, K), checks x
  const int64_t N = x.size(0);
  Tensor window = advance_window(state, x, kernel_size);  // (N, j, C)
  Tensor y = dynamic_conv_step(window, reshape(a, {N, heads, kernel_size}));  // (N, 1, C)
  if (conv_bias.defined()) y = add(y, conv_bias);
  return y;
}

}  // namespace payless
