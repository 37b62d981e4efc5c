// See models/encoder.h.
#include "models/encoder.h"

#include <cmath>

#include "models/decoder.h"
#include "models/sequence_model.h"

namespace payless {

Tensor source_padding_mask(const IdTensor& source) {
  if (source.shape.rank() != 2) fail("encoder: source must be (B, S), got ", source.shape.str());
  bool any = false;
  for (int32_t id : source.values) any = any || id == kPadId;
  if (!any) return Tensor();
  Tensor mask = Tensor::empty(source.shape);  // (B, S)
  for (int64_t i = 0; i < source.numel(); ++i) mask.data()[i] = source.values[i] == kPadId ? 1.0f : 0.0f;
  return mask;
}

Encoder::Encoder(const ModelConfig& config, int64_t vocab, Embedding* shared_embedding, Rng& rng)
    : stack_(config.encoder),
      dropout_(config.dropout),
      vocab_(vocab),
      sinusoidal_(config.encoder.embed_dim, kPadId) {
  if (vocab <= 0) fail("encoder: the source vocabulary is empty (", vocab, " entries)");
  const int64_t d = stack_.embed_dim;
  if (shared_embedding) {
    if (shared_embedding->num_embeddings != vocab || shared_embedding->embedding_dim != d)
      fail("encoder: the shared embedding is ", shared_embedding->num_embeddings, "×",
           shared_embedding->embedding_dim, " but the encoder needs ", vocab, "×", d);
    embed_tokens_ = shared_embedding;
  } else {
    own_embedding_ = std::make_unique<Embedding>(vocab, d, kPadId, rng);
    embed_tokens_ = own_embedding_.get();
  }
  register_module("embed_tokens", *embed_tokens_);
  if (stack_.learned_pos) {
    learned_positions_ = std::make_unique<LearnedPositionalEmbedding>(stack_.max_positions, d, kPadId, rng);
    register_module("embed_positions", *learned_positions_);
  }
  for (int64_t i = 0; i < stack_.layers; ++i) {
    const std::string name = "layers." + std::to_string(i);
    if (stack_.block == "transformer") {
      attention_layers_.push_back(
          std::make_unique<TransformerEncoderLayer>(transformer_layer_config(config, stack_), rng));
      register_module(name, *attention_layers_.back());
    } else {
      conv_layers_.push_back(std::make_unique<LightConvEncoderLayer>(conv_layer_config(config, stack_, i), rng));
      register_module(name, *conv_layers_.back());
    }
  }
  // A pre-norm stack leaves its sum of residuals unnormalised; the reference adds one last
  // LayerNorm then, and none after a post-norm stack whose layers already end with one.
  if (stack_.normalize_before) {
    layer_norm_ = std::make_unique<LayerNorm>(d);
    register_module("layer_norm", *layer_norm_);
  }
}

EncoderOutput Encoder::forward(const IdTensor& source) const {
  if (source.shape.rank() != 2) fail("encoder: source must be (B, S), got ", source.shape.str());
  const int64_t S = source.shape[1];
  if (S > stack_.max_positions)
    fail("encoder: source of ", S, " tokens is longer than max_positions ", stack_.max_positions);
  for (int32_t id : source.values)
    if (id < 0 || id >= vocab_) fail("encoder: source id ", id, " is outside the vocabulary of ", vocab_);
  EncoderOutput result;
  result.padding_mask = source_padding_mask(source);  // (B, S) or undefined

  // sqrt(d)·E[x] + PE, then dropout (spec §4.1).
  Tensor positions = learned_positions_ ? learned_positions_->forward(source) : sinusoidal_.forward(source);
  Tensor x = scale(embed_tokens_->forward(source), std::sqrt(static_cast<float>(stack_.embed_dim)));
  x = dropout(add(x, positions), dropout_, is_training());  // (B, S, d)
  for (const auto& layer : conv_layers_) x = layer->forward(x, result.padding_mask);
  for (const auto& layer : attention_layers_) x = layer->forward(x, result.padding_mask);
  if (layer_norm_) x = layer_norm_->forward(x);
  result.out = x;
  return result;
}

}  // namespace payless
