// The decoder stack shared by the language model and the translator (spec §4.4, §4.7, §5.2):
//   x = dropout(sqrt(d)·E[tokens] + PE[positions]);  x = layer_i(x) for each layer;
//   [final LayerNorm if normalize_before and final_norm];  logits = x · W_outᵀ
// where the layers are LightConv/DynamicConv decoder layers (causal conv) or Transformer decoder
// layers (masked self-attention), with encoder-decoder attention when there is an encoder, and
// W_out is the token embedding itself (tied) or its own V×d matrix (no bias).
//
// Incremental decoding: DecoderState holds every layer's state (conv windows, attention caches)
// and how many tokens were fed; step() takes the newest token of each hypothesis and returns its
// logits, equal to the last row of forward() on the whole prefix. reorder() follows beam search.
#pragma once

#include <memory>
#include <vector>

#include "layers/conv_layers.h"
#include "layers/embedding.h"
#include "layers/layer_norm.h"
#include "layers/positional.h"
#include "layers/transformer_layer.h"
#include "models/config.h"

namespace payless {

struct DecoderState {
  std::vector<LightConvDecoderLayerState> conv_layers;
  std::vector<TransformerDecoderLayerState> attention_layers;
  int64_t steps = 0;  // tokens fed so far
  void reorder(const std::vector<int64_t>& order) {
    for (auto& s : conv_layers) s.reorder(order);
    for (auto& s : attention_layers) s.reorder(order);
  }
};

class Decoder : public Module {
 public:
  // `shared_embedding`, if given, is the token embedding (owned by the caller) and is registered
  // here as `embed_tokens` too. final_norm = false for the language model (spec §4.7).
  Decoder(const ModelConfig& config, int64_t vocab, bool encoder_attention, bool final_norm,
          Embedding* shared_embedding, Rng& rng = global_rng());

  // prev_tokens (B, T) -> features (B, T, d) before the output projection.
  Tensor features(const IdTensor& prev_tokens, const Tensor& encoder_out = Tensor(),
                  const Tensor& encoder_padding_mask = Tensor()) const;
  // features -> logits (B, T, V)
  Tensor output_layer(const Tensor& features) const;
  Tensor forward(const IdTensor& prev_tokens, const Tensor& encoder_out = Tensor(),
                 const Tensor& encoder_padding_mask = Tensor()) const {
    return output_layer(features(prev_tokens, encoder_out, encoder_padding_mask));
  }

  DecoderState start_state() const;
  // tokens: the newest token of each of N hypotheses -> logits (N, V). Under NoGrad, eval mode.
  Tensor step(const std::vector<int32_t>& tokens, const Tensor& encoder_out,
              const Tensor& encoder_padding_mask, DecoderState& state) const;

  int64_t vocab_size() const { return vocab_; }
  int64_t num_layers() const { return static_cast<int64_t>(conv_layers_.size() + attention_layers_.size()); }

 private:
  Tensor embed(const IdTensor& tokens, const Tensor& positions_embedded) const;

  StackConfig stack_;
  float dropout_;
  int64_t vocab_;
  bool final_norm_;
  Embedding* embed_tokens_;
  std::unique_ptr<Embedding> own_embedding_;
  SinusoidalPositionalEmbedding sinusoidal_;
  std::unique_ptr<LearnedPositionalEmbedding> learned_positions_;
  std::vector<std::unique_ptr<LightConvDecoderLayer>> conv_layers_;
  std::vector<std::unique_ptr<TransformerDecoderLayer>> attention_layers_;
  std::unique_ptr<LayerNorm> layer_norm_;
  Tensor output_projection_;  // (V, d); undefined when tied to the embedding
};

// The per-layer settings of a conv or attention layer, from the model config.
LightConvLayerConfig conv_layer_config(const ModelConfig& config, const StackConfig& stack, int64_t layer);
TransformerLayerConfig transformer_layer_config(const ModelConfig& config, const StackConfig& stack);

}  // namespace payless
