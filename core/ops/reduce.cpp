// Reductions: sum and mean (of everything or along one dim) and max along a dim.
// A tensor is viewed as (outer, n, inner) around the reduced dim, so one loop nest serves every
// dim. Declarations: core/ops.h. Backward closures accumulate (core/autograd.h).
#include <limits>

#include "core/autograd.h"
#include "core/ops.h"

namespace payless {
namespace {

Shape reduced_shape(const Shape& s, int dim, bool keepdim) {
  std::vector<int64_t> dims;
  for (int i = 0; i < s.rank(); ++i) {
    if (i != dim) dims.push_back(s[i]);
    else if (keepdim) dims.push_back(1);
  }
  return Shape(dims);
}

}  // namespace

Tensor sum(const Tensor& x) {
  // Summed in double: a float running sum over a million elements loses digits that the
  // gradient check (and the loss) would notice.
  double total = 0.0;
  const float* px = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) total += px[i];
  Tensor y = Tensor::scalar(static_cast<float>(total));
  if (needs_grad(x)) {
    record(y, [x](const Tensor& dy) mutable {
      float g = dy.data()[0];
      float* gx = x.grad_ptr();
      for (int64_t i = 0; i < x.numel(); ++i) gx[i] += g;
    });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  if (x.numel() == 0) fail("mean: ", x.describe(), " is empty");
  return scale(sum(x), 1.0f / static_cast<float>(x.numel()));
}

Tensor sum(const Tensor& x, int dim, bool keepdim) {
  const int d = x.shape().normalize(dim);
  const int64_t outer = x.shape().outer(d), n = x.shape()[d], inner = x.shape().inner(d);
  Tensor y = Tensor::zeros(reduced_shape(x.shape(), d, keepdim));
  const float* px = x.data();
  float* py = y.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i) py[o * inner + i] += px[(o * n + j) * inner + i];
  if (needs_grad(x)) {
    record(y, [x, outer, n, inner](const Tensor& dy) mutable {
      const float* g = dy.data();
      float* gx = x.grad_ptr();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = 0; i < inner; ++i) gx[(o * n + j) * inner + i] += g[o * inner + i];
    });
  }
  return y;
}

Tensor mean(const Tensor& x, int dim, bool keepdim) {
  const int64_t n = x.shape()[dim];
  if (n == 0) fail("mean: dim ", dim, " of ", x.describe(), " is empty");
  return scale(sum(x, dim, keepdim), 1.0f / static_cast<float>(n));
}

Tensor max(const Tensor& x, int dim, bool keepdim) {
  const int d = x.shape().normalize(dim);
  const int64_t outer = x.shape().outer(d), n = x.shape()[d], inner = x.shape().inner(d);
  if (n == 0) fail("max: dim ", dim, " of ", x.describe(), " is empty");
  Tensor y = Tensor::empty(reduced_shape(x.shape(), d, keepdim));
  std::vector<int64_t> argmax(outer * inner);  // index j of the first maximum, for backward
  const float* px = x.data();
  float* py = y.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < n; ++j)
        if (px[(o * n + j) * inner + i] > px[(o * n + best) * inner + i]) best = j;
      argmax[o * inner + i] = best;
      py[o * inner + i] = px[(o * n + best) * inner + i];
    }
  if (needs_grad(x)) {
    record(y, [x, argmax = std::move(argmax), n, inner](const Tensor& dy) mutable {
      const float* g = dy.data();
      float* gx = x.grad_ptr();
      for (int64_t k = 0; k < static_cast<int64_t>(argmax.size()); ++k) {
        int64_t o = k / inner, i = k % inner;
        gx[(o * n + argmax[k]) * inner + i] += g[k];
      }
    });
  }
  return y;
}

}  // namespace payless
