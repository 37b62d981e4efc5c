// See layers/conv_common.h. The window bookkeeping is built from ops (concat, narrow); decoding
// runs it under NoGrad.
#include "layers/conv_common.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace payless {

void check_conv_options(const char* layer, int64_t channels, int64_t kernel_size, int64_t heads,
                        int64_t padding_l, float weight_dropout) {
  if (channels < 1 || kernel_size < 1 || heads < 1)
    fail(layer, ": channels (", channels, "), kernel size (", kernel_size, ") and heads (", heads,
         ") must be positive");
  if (channels % heads != 0)
    fail(layer, ": channels C = ", channels, " must be divisible by the heads H = ", heads,
         " (each head owns C/H contiguous channels)");
  if (padding_l < 0 || padding_l > kernel_size - 1)
    fail(layer, ": padding_l = ", padding_l, " must be in [0, K-1] = [0, ", kernel_size - 1,
         "] (K-1 causal for decoders, K/2 centred for encoders)");
  if (!(weight_dropout >= 0.0f && weight_dropout < 1.0f))
    fail(layer, ": weight_dropout must be in [0, 1), got ", weight_dropout);
}

void check_conv_input(const char* layer, const Tensor& x, int64_t channels, const Tensor& param) {
  if (!x.defined() || x.rank() != 3 || x.size(2) != channels)
    fail(layer, " with ", param.describe(), ": input must be (B, T, C) with C = ", channels,
         ", got ", x.defined() ? x.describe() : std::string("an undefined tensor"));
}

Tensor advance_window(ConvState& state, const Tensor& x, int64_t kernel_size) {
  if (kernel_size < 1) fail("conv step: kernel size must be positive, got ", kernel_size);
  if (!x.defined() || x.rank() != 3 || x.size(1) != 1)
    fail("conv step: input must be one time step (N, 1, C), got ",
         x.defined() ? x.describe() : std::string("an undefined tensor"),
         " (feed one token per call; see spec §1.7)");
  Tensor window = x;  // (N, 1, C) on the first step
  if (state.length() > 0) {
    const Tensor& old = state.window;  // (N, j-1, C)
    if (old.size(0) != x.size(0) || old.size(2) != x.size(2))
      fail("conv step: the state holds ", old.size(0), " hypotheses of ", old.size(2),
           " channels but the input is ", x.describe(),
           " (after a beam search step, reorder the state first)");
    window = concat({old, x}, 1);  // (N, j, C), oldest first
  }
  const int64_t j = window.size(1), keep = std::min(j, kernel_size - 1);
  // A copy, not a view, so the state does not pin this step's whole window.
  state.window = narrow(window, 1, j - keep, keep).clone_data();  // (N, keep, C)
  return window;
}

}  // namespace payless
