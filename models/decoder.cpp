// See models/decoder.h.
#include "models/decoder.h"

#include <cmath>

#include "core/autograd.h"
#include "models/sequence_model.h"

namespace payless {

LightConvLayerConfig conv_layer_config(const ModelConfig& config, const StackConfig& stack, int64_t layer) {
  LightConvLayerConfig c;
  c.embed_dim = stack.embed_dim;
  c.conv_dim = stack.channels();
  c.ffn_dim = stack.ffn_dim;
  c.heads = stack.heads;
  c.kernel_size = stack.kernel_size(layer);
  c.conv_type = stack.block == "lightweight" ? ConvType::kLightweight : ConvType::kDynamic;
  c.glu = stack.glu;
  c.normalize_before = stack.normalize_before;
  c.dropout = config.dropout;
  c.input_dropout = config.input_dropout;
  c.relu_dropout = config.relu_dropout;
  c.attention_dropout = config.attention_dropout;
  c.weight_dropout = config.effective_weight_dropout();
  return c;
}

TransformerLayerConfig transformer_layer_config(const ModelConfig& config, const StackConfig& stack) {
  TransformerLayerConfig c;
  c.embed_dim = stack.embed_dim;
  c.ffn_dim = stack.ffn_dim;
  c.heads = stack.heads;
  c.dropout = config.dropout;
  c.attention_dropout = config.attention_dropout;
  c.relu_dropout = config.relu_dropout;
  c.normalize_before = stack.normalize_before;
  return c;
}

Decoder::Decoder(const ModelConfig& config, int64_t vocab, bool encoder_attention, bool final_norm,
                 Embedding* shared_embedding, Rng& rng)
    : stack_(config.decoder),
      dropout_(config.dropout),
      vocab_(vocab),
      final_norm_(final_norm),
      sinusoidal_(config.decoder.embed_dim, kPadId) {
  if (vocab <= 0) fail("decoder: the vocabulary is empty (", vocab, " entries)");
  const int64_t d = stack_.embed_dim;
  if (shared_embedding) {
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
      attention_layers_.push_back(std::make_unique<TransformerDecoderLayer>(
          transformer_layer_config(config, stack_), encoder_attention, rng));
      register_module(name, *attention_layers_.back());
    } else {
      conv_layers_.push_back(std::make_unique<LightConvDecoderLayer>(
          conv_layer_config(config, stack_, i), encoder_attention, rng));
      register_module(name, *conv_layers_.back());
    }
  }
  if (stack_.normalize_before && final_norm_) {
    layer_norm_ = std::make_unique<LayerNorm>(d);
    register_module("layer_norm", *layer_norm_);
  }
  if (!config.share_decoder_input_output_embed) {
    // fairseq: N(0, d^-1/2), no bias (spec §4.1).
    output_projection_ = Tensor::empty({vocab, d});
    rng.normal_(output_projection_, 0.0f, 1.0f / std::sqrt(static_cast<float>(d)));
    register_parameter("output_projection.weight", output_projection_);
  }
}

Tensor Decoder::embed(const IdTensor& tokens, const Tensor& positions_embedded) const {
  // sqrt(d)·E[x] + PE, then dropout (spec §4.1).
  Tensor x = scale(embed_tokens_->forward(tokens), std::sqrt(static_cast<float>(stack_.embed_dim)));
  x = add(x, positions_embedded);
  return dropout(x, dropout_, is_training());
}

Tensor Decoder::features(const IdTensor& prev_tokens, const Tensor& encoder_out,
                         const Tensor& encoder_padding_mask) const {
  if (prev_tokens.shape.rank() != 2) fail("decoder: tokens must be (B, T), got ", prev_tokens.shape.str());
  const int64_t T = prev_tokens.shape[1];
  if (T > stack_.max_positions)
    fail("decoder: sequence of ", T, " tokens is longer than max_positions ", stack_.max_positions);
  Tensor positions = learned_positions_ ? learned_positions_->forward(prev_tokens) : sinusoidal_.forward(prev_tokens);
  Tensor x = embed(prev_tokens, positions);  // (B, T, d)
  for (const auto& layer : conv_layers_) x = layer->forward(x, encoder_out, encoder_padding_mask);
  for (const auto& layer : attention_layers_) x = layer->forward(x, encoder_out, encoder_padding_mask);
  if (layer_norm_) x = layer_norm_->forward(x);
  return x;
}

Tensor Decoder::output_layer(const Tensor& features) const {
  return linear(features, output_projection_.defined() ? output_projection_ : embed_tokens_->weight);
}

DecoderState Decoder::start_state() const {
  DecoderState state;
  state.conv_layers.resize(conv_layers_.size());
  state.attention_layers.resize(attention_layers_.size());
  return state;
}

Tensor Decoder::step(const std::vector<int32_t>& tokens, const Tensor& encoder_out,
                     const Tensor& encoder_padding_mask, DecoderState& state) const {
  NoGrad no_grad;
  const int64_t n = static_cast<int64_t>(tokens.size());
  // The newest token of an unpadded prefix of length L sits at position pad + L (spec §4.2).
  const int64_t position = kPadId + state.steps + 1;
  if (state.steps + 1 > stack_.max_positions)
    fail("decoder: decoding past max_positions ", stack_.max_positions);
  IdTensor ids(Shape{n, 1}, tokens);
  Tensor pe;
  if (learned_positions_) {
    IdTensor positions(Shape{n, 1}, std::vector<int32_t>(n, static_cast<int32_t>(position)));
    pe = embedding(learned_positions_->weight, positions, kPadId);
  } else {
    pe = reshape(sinusoidal_.at(position), {1, 1, stack_.embed_dim});
  }
  Tensor x = embed(ids, pe);  // (N, 1, d); dropout is off in eval mode
  for (size_t i = 0; i < conv_layers_.size(); ++i)
    x = conv_layers_[i]->step(x, encoder_out, encoder_padding_mask, state.conv_layers[i]);
  for (size_t i = 0; i < attention_layers_.size(); ++i)
    x = attention_layers_[i]->step(x, encoder_out, encoder_padding_mask, state.attention_layers[i]);
  if (layer_norm_) x = layer_norm_->forward(x);
  ++state.steps;
  return reshape(output_layer(x), {n, vocab_});
}

}  // namespace payless
