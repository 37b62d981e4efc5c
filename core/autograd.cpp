// The tape behind core/autograd.h.
#include "core/autograd.h"

#include <cstring>
#include <vector>

namespace payless {
namespace {

struct TapeEntry {
  Tensor output;
  BackwardFn backward;
};

thread_local std::vector<TapeEntry> tape;
thread_local bool recording = true;

}  // namespace

bool grad_enabled() { return recording; }

NoGrad::NoGrad() : previous_(recording) { recording = false; }
NoGrad::~NoGrad() { recording = previous_; }

void record(Tensor& output, BackwardFn backward) {
  output.impl().requires_grad = true;
  tape.push_back({output, std::move(backward)});
}

void backward(Tensor root, const Tensor& root_grad) {
  if (!root.requires_grad())
    fail("backward: ", root.describe(), " does not require grad (no input had requires_grad, or "
         "it was computed under NoGrad)");
  if (root_grad.shape() != root.shape())
    fail("backward: gradient shape ", root_grad.shape().str(), " does not match output ",
         root.describe());
  float* seed = root.grad_ptr();
  const float* g = root_grad.data();
  for (int64_t i = 0; i < root.numel(); ++i) seed[i] += g[i];

  // Move the tape out first: closures must not see (or extend) the tape they are run from.
  std::vector<TapeEntry> entries;
  entries.swap(tape);
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (!it->output.has_grad()) continue;  // nothing downstream depended on this output
    it->backward(it->output.grad());
    // Release what this closure saved as soon as it has run: peak memory falls during backward.
    it->backward = nullptr;
    it->output = Tensor();
  }
}

void backward(Tensor root) {
  if (root.numel() != 1)
    fail("backward: ", root.describe(), " is not a scalar; pass its gradient explicitly");
  backward(root, Tensor::full(root.shape(), 1.0f));
}

void clear_tape() { tape.clear(); }
size_t tape_size() { return tape.size(); }

}  // namespace payless
