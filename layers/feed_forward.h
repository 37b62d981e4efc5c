// The position-wise feed-forward block shared by every encoder/decoder layer (spec §4.3, §5.2):
//
//   y = fc2( dropout( relu( fc1(x) ), relu_dropout ) )        fc1: C -> F, fc2: F -> C
//
// What it is not: a Module. In the reference implementation fc1 and fc2 sit directly on the layer
// (`encoder.layers.3.fc1.weight`), so this block must not add a name level of its own. The owning
// layer registers the two Linears under its own name and passes its training flag:
//
//   FeedForward ffn;                                  // member
//   ... : ffn(C, F, relu_dropout) {
//     register_module("fc1", ffn.fc1);
//     register_module("fc2", ffn.fc2);
//   }
//   x = ffn.forward(x, is_training());
//
// The residual, the outer dropout and the LayerNorm belong to the layer, not to this block.
#pragma once

#include <cstdint>

#include "core/ops.h"
#include "core/rng.h"
#include "layers/linear.h"

namespace payless {

struct FeedForward {
  FeedForward(int64_t channels, int64_t ffn_dim, float relu_dropout, Rng& rng = global_rng())
      : fc1(channels, ffn_dim, true, rng), fc2(ffn_dim, channels, true, rng), relu_dropout(relu_dropout) {}

  // x (..., C) -> (..., C)
  Tensor forward(const Tensor& x, bool training) const {
    Tensor h = relu(fc1.forward(x));           // (..., F)
    h = dropout(h, relu_dropout, training);    // inverted dropout, global_rng()
    return fc2.forward(h);                     // (..., C)
  }

  Linear fc1;  // C -> F
  Linear fc2;  // F -> C
  float relu_dropout;
};

}  // namespace payless
