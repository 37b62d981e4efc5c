// LayerNorm over the last dim (spec §4.5): (x - mean) / sqrt(var + eps) · weight + bias, with the
// biased variance, eps = 1e-5, weight initialised to 1 and bias to 0.
// Parameter names "weight" and "bias" as in PyTorch. The arithmetic and its backward are the
// layer_norm op (core/ops.h, core/ops/norm.cpp).
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/ops.h"
#include "layers/module.h"

namespace payless {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t channels, float eps = 1e-5f) : channels(channels), eps(eps) {
    if (channels <= 0) fail("LayerNorm: channels must be positive, got ", channels);
    weight = Tensor::ones({channels});
    bias = Tensor::zeros({channels});
    register_parameter("weight", weight);
    register_parameter("bias", bias);
  }

  // x (..., C) -> (..., C)
  Tensor forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

  const int64_t channels;
  const float eps;
  Tensor weight;  // (C)
  Tensor bias;    // (C)
};

}  // namespace payless
