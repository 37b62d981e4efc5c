// Token embedding (spec §4.1): a (V, C) table looked up by token id.
//
// Initialisation: N(0, C^-1/2), with the padding row set to 0; the padding row also never receives
// a gradient (the embedding op skips it), so it stays 0 through training.
// What it is not: the sqrt(C) scale and the positional embedding are added by the model
// (models/), and positions live in layers/positional.h. A tied output projection reuses `weight`.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "layers/module.h"

namespace payless {

class Embedding : public Module {
 public:
  // padding_idx: the id of <pad> (1 in the fairseq dictionary), or -1 for none.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int32_t padding_idx,
            Rng& rng = global_rng())
      : num_embeddings(num_embeddings), embedding_dim(embedding_dim), padding_idx(padding_idx) {
    if (num_embeddings <= 0 || embedding_dim <= 0)
      fail("Embedding: sizes must be positive, got V=", num_embeddings, " C=", embedding_dim);
    if (padding_idx < -1 || padding_idx >= num_embeddings)
      fail("Embedding: padding_idx ", padding_idx, " is outside the vocabulary of ", num_embeddings);
    weight = Tensor::empty({num_embeddings, embedding_dim});
    rng.normal_(weight, 0.0f, 1.0f / std::sqrt(static_cast<float>(embedding_dim)));
    if (padding_idx >= 0)
      std::memset(weight.data() + padding_idx * embedding_dim, 0, sizeof(float) * embedding_dim);
    register_parameter("weight", weight);
  }

  // ids (any shape, e.g. (B, T)) -> (ids..., C)
  Tensor forward(const IdTensor& ids) const { return embedding(weight, ids, padding_idx); }

  const int64_t num_embeddings, embedding_dim;
  const int32_t padding_idx;
  Tensor weight;  // (V, C)
};

}  // namespace payless
