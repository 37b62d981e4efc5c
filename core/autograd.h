// Reverse-mode automatic differentiation on a define-by-run tape.
//
// Every op computes its output and then, if any input requires a gradient, calls record() with a
// backward closure written right below its forward code (see core/ops/*.cpp). The tape is the
// list of those closures in the order the ops ran, which is already a topological order, so
// backward() just runs them in reverse. Each closure captures, as refcounted Tensor handles,
// exactly what it needs; backward() then clears the tape, which releases those saved activations,
// so memory does not grow from step to step.
//
// THE CONTRACT: a backward closure ACCUMULATES into its inputs' gradients (+=, or GEMM with
// beta = 1). It never assigns. A tensor used by two ops receives the sum of both contributions
// only because of this rule; the gradient-check helper (tests/support/gradcheck.h) uses every
// input twice so that an assigning closure fails its test. The one exception is a saving, not a
// loophole: Tensor::grad_target() may hand out a gradient buffer that did not exist yet, marked
// fresh and uninitialised, and a closure that writes every element assigns into that one (the
// sum of nothing and its contribution) instead of adding to zeros. The hot closures (matmul,
// linear, reshape, permute, dropout, softmax, cross-entropy, layer norm, the activations) do.
//
// A closure receives its output's gradient `dy` (same shape as the output) and is skipped when no
// gradient reached that output. There is one tape per thread; backward() consumes all of it.
#pragma once

#include <functional>

#include "core/tensor.h"

namespace payless {

using BackwardFn = std::function<void(const Tensor& dy)>;

// True while recording is on (not inside a NoGrad scope).
bool grad_enabled();

// RAII: nothing is recorded while one is alive (inference, decoding, optimizer updates).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// Should an op with these inputs record its backward? Undefined tensors (an absent bias) are
// ignored.
template <typename... Ts>
bool needs_grad(const Ts&... inputs) {
  return grad_enabled() && ((inputs.defined() && inputs.requires_grad()) || ...);
}

// Marks `output` as requiring grad and appends the closure to the tape.
void record(Tensor& output, BackwardFn backward);

// Runs the tape backwards from a one-element `root` (seeded with 1), or from any `root` seeded
// with `root_grad` of the same shape. Then clears the tape.
void backward(Tensor root);
void backward(Tensor root, const Tensor& root_grad);

// Drops the tape without running it (e.g. after a forward pass whose loss was not finite).
void clear_tape();
size_t tape_size();

}  // namespace payless
