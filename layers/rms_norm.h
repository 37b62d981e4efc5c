// RmsNorm: root-mean-square layer normalisation over the last dim (Zhang & Sennrich, 2019),
//
//   y = x / sqrt(mean_c(x²) + eps) · weight          mean over the C channels of each row
//
// LayerNorm without the mean subtraction and without the bias: each row is rescaled to unit
// root-mean-square, never re-centred (a constant row stays constant, it does not become 0).
// One reduction instead of two and C fewer parameters; used by T5 and LLaMA-style models.
//
// Parameter: `weight` (C), the gain, initialised to 1; the name matches PyTorch's nn.RMSNorm so
// checkpoints map one to one. eps defaults to 1e-6 (T5, LLaMA) and must be positive, so that an
// all-zero row (padding) gives 0, not 0/0.
// What this is not: a kernel or an op. It composes existing ops (core/ops.h), whose closures
// give it its backward; docs/extending.md walks through this file as the example of a new layer.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/ops.h"
#include "layers/module.h"

namespace payless {

class RmsNorm : public Module {
 public:
  explicit RmsNorm(int64_t channels, float eps = 1e-6f) : channels(channels), eps(eps) {
    if (channels <= 0) fail("RmsNorm: channels must be positive, got ", channels);
    if (!(eps > 0.0f)) fail("RmsNorm: eps must be positive (it keeps a zero row finite), got ", eps);
    weight = Tensor::ones({channels});
    register_parameter("weight", weight);
  }

  // x (..., C) -> (..., C)
  Tensor forward(const Tensor& x) const {
    if (!x.defined() || x.rank() < 1 || x.size(-1) != channels)
      fail("RmsNorm with ", weight.describe(), ": input must be (..., ", channels, "), got ",
           x.defined() ? x.describe() : std::string("an undefined tensor"));
    // x is read twice (x·x and the division below): its gradient is the sum of both paths, which
    // the accumulate-only backward contract (core/autograd.h) gives for free.
    Tensor mean_square = mean(mul(x, x), -1, /*keepdim=*/true);  // (..., 1)
    Tensor rms = sqrt(add_scalar(mean_square, eps));              // (..., 1)
    return mul(div(x, rms), weight);  // (..., C) / (..., 1) · (C), broadcast from the right
  }

  const int64_t channels;
  const float eps;
  Tensor weight;  // (C)
};

}  // namespace payless
