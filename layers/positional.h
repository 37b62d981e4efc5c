// Positional embeddings: the sinusoidal table the paper's models use (spec §4.2) and the learned
// variant (fairseq `--*-learned-pos`, off in every registered arch).
//
// Positions (both kinds): in each row of a (B, T) batch of token ids, non-pad tokens are numbered
// padding_idx+1, padding_idx+2, ... in order and pad tokens get padding_idx. So with <pad> = 1 the
// first real token is at position 2, and left padding does not shift anyone's position.
// Incremental decoding: a prefix of L tokens (no padding; the first is EOS) gives its newest token
// position padding_idx + L.
// What it is not: the token embedding (layers/embedding.h) or the sum sqrt(C)·E + PE (models/).
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace payless {

// tokens (B, T) -> positions (B, T) as described above.
IdTensor make_positions(const IdTensor& tokens, int32_t padding_idx);

// The sinusoidal row for one position, C = dim values (spec §4.2, the tensor2tensor variant):
//   half = C/2,  w_j = exp(-j · ln(10000) / (half - 1)),  j = 0 … half-1
//   row = [sin(p·w_0) … sin(p·w_{half-1}), cos(p·w_0) … cos(p·w_{half-1})] (+ one 0 if C is odd)
// Sines first then cosines (not interleaved); the denominator is half-1, not C.
// The row of position padding_idx is all zeros (handled by the class below, not here).
std::vector<float> sinusoidal_row(int64_t position, int64_t dim);

// No parameters: rows are computed on demand and kept in a table that grows as longer inputs come.
class SinusoidalPositionalEmbedding {
 public:
  SinusoidalPositionalEmbedding(int64_t embedding_dim, int32_t padding_idx);

  // tokens (B, T) -> (B, T, C), no gradient.
  Tensor forward(const IdTensor& tokens) const;
  // positions (any shape) -> (positions..., C), no gradient.
  Tensor lookup(const IdTensor& positions) const;
  // The row for one position, (C): for incremental decoding, position = padding_idx + L.
  Tensor at(int64_t position) const;

  const int64_t embedding_dim;
  const int32_t padding_idx;

 private:
  void ensure_rows(int64_t rows) const;
  mutable std::vector<float> table_;  // (rows, C); row padding_idx is zero
  mutable int64_t rows_ = 0;
};

// Learned positions, fairseq style: a (max_positions + padding_idx + 1, C) table indexed by the
// positions above, N(0, C^-1/2) with the padding_idx row zero and never updated. Parameter name
// "weight" (fairseq: `embed_positions.weight`).
class LearnedPositionalEmbedding : public Module {
 public:
  LearnedPositionalEmbedding(int64_t max_positions, int64_t embedding_dim, int32_t padding_idx,
                             Rng& rng = global_rng());

  // tokens (B, T) -> (B, T, C); fails if a sequence is longer than max_positions.
  Tensor forward(const IdTensor& tokens) const;
  // positions (any shape) -> (positions..., C).
  Tensor lookup(const IdTensor& positions) const;

  const int64_t max_positions, embedding_dim;
  const int32_t padding_idx;
  Tensor weight;  // (max_positions + padding_idx + 1, C)
};

}  // namespace payless
