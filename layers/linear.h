// Linear: y = x · Wᵀ + b, the affine map inside every layer of the model.
//
// Shapes: weight (out, in) as in PyTorch, so checkpoints import without a transpose; bias (out),
// or absent. forward() accepts any leading dims: (..., in) -> (..., out).
// Initialisation (spec §4.5): Xavier-uniform weight, zero bias, as every Linear in fairseq's
// lightconv.py. Layers that follow another rule (attention's q/k/v, spec §5.1) re-initialise the
// tensors after construction. The arithmetic is the `linear` op (core/ops.h, core/ops/matmul.cpp).
#pragma once

#include <cstdint>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "layers/module.h"

namespace payless {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Rng& rng = global_rng())
      : in_features(in_features), out_features(out_features) {
    if (in_features <= 0 || out_features <= 0)
      fail("Linear: sizes must be positive, got in=", in_features, " out=", out_features);
    weight = Tensor::empty({out_features, in_features});
    rng.xavier_uniform_(weight);
    register_parameter("weight", weight);
    if (bias) {
      this->bias = Tensor::zeros({out_features});
      register_parameter("bias", this->bias);
    }
  }

  // x (..., in) -> (..., out); scale · (x·Wᵀ + b) when given a scale (free: see linear()).
  Tensor forward(const Tensor& x, float scale = 1.0f) const { return linear(x, weight, bias, scale); }

  const int64_t in_features, out_features;
  Tensor weight;  // (out, in)
  Tensor bias;    // (out), undefined when constructed with bias = false
};

}  // namespace payless
