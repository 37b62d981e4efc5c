// See layers/positional.h.
#include "layers/positional.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"

namespace payless {

IdTensor make_positions(const IdTensor& tokens, int32_t padding_idx) {
  if (tokens.shape.rank() != 2)
    fail("make_positions: tokens must be (B, T), got shape ", tokens.shape.str());
  const int64_t B = tokens.shape[0], T = tokens.shape[1];
  IdTensor positions(tokens.shape, std::vector<int32_t>(tokens.values.size()));
  for (int64_t b = 0; b < B; ++b) {
    int32_t next = padding_idx;  // incremented before each real token: the first gets padding_idx+1
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      positions.values[i] = tokens.values[i] == padding_idx ? padding_idx : ++next;
    }
  }
  return positions;
}

std::vector<float> sinusoidal_row(int64_t position, int64_t dim) {
  if (dim <= 3)
    fail("sinusoidal positions need embedding_dim >= 4 (the frequency denominator is dim/2 - 1), got ",
         dim);
  const int64_t half = dim / 2;
  std::vector<float> row(dim, 0.0f);  // an odd dim keeps its trailing 0
  // Computed in double and rounded once, so the table does not depend on how far it has grown.
  const double step = std::log(10000.0) / static_cast<double>(half - 1);
  for (int64_t j = 0; j < half; ++j) {
    const double angle = static_cast<double>(position) * std::exp(-static_cast<double>(j) * step);
    row[j] = static_cast<float>(std::sin(angle));
    row[half + j] = static_cast<float>(std::cos(angle));
  }
  return row;
}

// ---- SinusoidalPositionalEmbedding

SinusoidalPositionalEmbedding::SinusoidalPositionalEmbedding(int64_t embedding_dim, int32_t padding_idx)
    : embedding_dim(embedding_dim), padding_idx(padding_idx) {
  if (padding_idx < 0) fail("SinusoidalPositionalEmbedding: padding_idx must be >= 0, got ", padding_idx);
  sinusoidal_row(0, embedding_dim);  // checks the dim now rather than at the first forward
  ensure_rows(1024);
}

void SinusoidalPositionalEmbedding::ensure_rows(int64_t rows) const {
  if (rows <= rows_) return;
  // Grow geometrically so a slowly lengthening decode does not recompute the table at every step.
  const int64_t target = std::max(rows, 2 * rows_);
  table_.resize(target * embedding_dim);
  for (int64_t p = rows_; p < target; ++p) {
    float* out = table_.data() + p * embedding_dim;
    if (p == padding_idx) {
      std::memset(out, 0, sizeof(float) * embedding_dim);
    } else {
      std::vector<float> row = sinusoidal_row(p, embedding_dim);
      std::memcpy(out, row.data(), sizeof(float) * embedding_dim);
    }
  }
  rows_ = target;
}

Tensor SinusoidalPositionalEmbedding::lookup(const IdTensor& positions) const {
  int32_t largest = 0;
  for (int32_t p : positions.values) {
    if (p < 0) fail("SinusoidalPositionalEmbedding: negative position ", p);
    largest = std::max(largest, p);
  }
  ensure_rows(static_cast<int64_t>(largest) + 1);
  std::vector<int64_t> dims = positions.shape.to_vector();
  dims.push_back(embedding_dim);
  Tensor out = Tensor::empty(Shape(dims));  // (positions..., C)
  for (int64_t i = 0; i < positions.numel(); ++i)
    std::memcpy(out.data() + i * embedding_dim, table_.data() + int64_t(positions.values[i]) * embedding_dim,
                sizeof(float) * embedding_dim);
  return out;
}

Tensor SinusoidalPositionalEmbedding::forward(const IdTensor& tokens) const {
  return lookup(make_positions(tokens, padding_idx));
}

Tensor SinusoidalPositionalEmbedding::at(int64_t position) const {
  return lookup(IdTensor(Shape{}, {static_cast<int32_t>(position)}));
}

// ---- LearnedPositionalEmbedding

LearnedPositionalEmbedding::LearnedPositionalEmbedding(int64_t max_positions, int64_t embedding_dim,
                                                       int32_t padding_idx, Rng& rng)
    : max_positions(max_positions), embedding_dim(embedding_dim), padding_idx(padding_idx) {
  if (max_positions <= 0 || embedding_dim <= 0 || padding_idx < 0)
    fail("LearnedPositionalEmbedding: need max_positions > 0, embedding_dim > 0, padding_idx >= 0; got ",
         max_positions, ", ", embedding_dim, ", ", padding_idx);
  const int64_t rows = max_positions + padding_idx + 1;
  weight = Tensor::empty({rows, embedding_dim});
  rng.normal_(weight, 0.0f, 1.0f / std::sqrt(static_cast<float>(embedding_dim)));
  std::memset(weight.data() + int64_t(padding_idx) * embedding_dim, 0, sizeof(float) * embedding_dim);
  register_parameter("weight", weight);
}

Tensor LearnedPositionalEmbedding::lookup(const IdTensor& positions) const {
  for (int32_t p : positions.values)
    if (p < 0 || p >= weight.size(0))
      fail("LearnedPositionalEmbedding: position ", p, " is outside [0, ", weight.size(0),
           "): sequences may have at most max_positions = ", max_positions, " tokens");
  return embedding(weight, positions, padding_idx);
}

Tensor LearnedPositionalEmbedding::forward(const IdTensor& tokens) const {
  return lookup(make_positions(tokens, padding_idx));
}

}  // namespace payless
