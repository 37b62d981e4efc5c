// What LightweightConv and DynamicConv share: the checks of their options and inputs, and
// ConvState, what a causal conv layer remembers between decoding steps.
//
// Spec §1.7: a causal conv (P = K-1) reads the current input and the K-1 inputs before it, so the
// whole past of a hypothesis reduces to its last K-1 conv inputs. Memory stays constant however
// long the output grows (self-attention's cache, by contrast, grows by one key and value per step).
// What this is not: the arithmetic of a step (LightweightConv::step, DynamicConv::step in
// layers/lightweight_conv.h and layers/dynamic_conv.h) or a whole decoder layer's state
// (layers/conv_layers.h holds one of these plus the cross-attention cache).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "layers/incremental.h"

namespace payless {

// Throws naming `layer` unless C > 0, K >= 1, H >= 1, C % H == 0, padding_l in [0, K-1] and
// weight_dropout in [0, 1).
void check_conv_options(const char* layer, int64_t channels, int64_t kernel_size, int64_t heads,
                        int64_t padding_l, float weight_dropout);
// Throws naming `layer` and its parameter unless x is (B, T, C) with the layer's C.
void check_conv_input(const char* layer, const Tensor& x, int64_t channels, const Tensor& param);

struct ConvState {
  // The most recent conv inputs of every hypothesis, oldest first: (N, j, C) with j <= K-1 (fewer
  // during the first K-1 steps). Undefined before the first step.
  Tensor window;

  int64_t length() const { return window.defined() ? window.size(1) : 0; }
  // Beam search: row n of the new window is row order[n] of the old one (rows may repeat or be
  // dropped, and N may change, e.g. when N sentences grow to N·beam hypotheses).
  void reorder(const std::vector<int64_t>& order) { window = reorder_batch(window, order); }
  void clear() { window = Tensor(); }
};

// One step's bookkeeping: appends x (N, 1, C) to the window and returns the window this step
// convolves, (N, j, C) with j = min(steps so far + 1, K), the newest input last. The state keeps
// its last K-1 rows (none when K = 1). Throws if x does not match the state's N or C.
Tensor advance_window(ConvState& state, const Tensor& x, int64_t kernel_size);

}  // namespace payless
