// Helpers shared by the per-layer incremental-decoding states (AttentionCache in
// layers/attention.h, the decoder-layer states, the convolution buffers).
//
// Beam search keeps B·beam hypotheses in the batch dimension; after each step it decides which
// hypotheses survive and in which order, and every cached tensor must follow. That is a gather
// along dim 0, done here outside autograd (decoding runs under NoGrad and never differentiates
// through a reorder).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace payless {

// x (B, ...) -> (order.size(), ...): row i of the result is row order[i] of x. Rows may repeat or
// be dropped (a beam that finished). An undefined x stays undefined. No gradient is recorded.
inline Tensor reorder_batch(const Tensor& x, const std::vector<int64_t>& order) {
  if (!x.defined()) return x;
  if (x.rank() == 0) fail("reorder_batch: ", x.describe(), " has no batch dimension");
  const int64_t B = x.size(0), row = x.shape().inner(0);
  std::vector<int64_t> dims = x.shape().to_vector();
  dims[0] = static_cast<int64_t>(order.size());
  Tensor out = Tensor::empty(Shape(dims));
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0 || order[i] >= B)
      fail("reorder_batch: index ", order[i], " is outside the batch of ", B, " rows of ",
           x.describe());
    std::memcpy(out.data() + static_cast<int64_t>(i) * row, x.data() + order[i] * row,
                sizeof(float) * row);
  }
  return out;
}

}  // namespace payless
