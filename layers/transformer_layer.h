// The Transformer baseline's encoder and decoder layers (spec §5.2), fairseq's
// TransformerEncoderLayer / TransformerDecoderLayer.
//
// Each sublayer is  r = x; [x = LN(x) if normalize_before]; x = dropout(sublayer(x)); x = r + x;
// [x = LN(x) if not normalize_before]. Post-norm is the default (transformer_iwslt_de_en).
//   encoder: self-attention (key padding mask), then the FFN
//   decoder: causal self-attention, encoder-decoder attention (absent for a language model), FFN
// Parameter names as the reference: self_attn, self_attn_layer_norm, encoder_attn,
// encoder_attn_layer_norm, fc1, fc2, final_layer_norm.
// What is not here: embeddings, the layer stack and the final LayerNorm of a pre-norm stack
// (models/); the LightConv/DynamicConv layers (their own files in layers/).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/attention.h"
#include "layers/feed_forward.h"
#include "layers/layer_norm.h"
#include "layers/module.h"

namespace payless {

struct TransformerLayerConfig {
  int64_t embed_dim = 512;          // C
  int64_t ffn_dim = 1024;           // F
  int64_t heads = 4;                // H
  float dropout = 0.1f;             // on each sublayer's output, before the residual add
  float attention_dropout = 0.0f;   // on attention probabilities
  float relu_dropout = 0.0f;        // between ReLU and fc2 (fairseq activation_dropout)
  bool normalize_before = false;    // pre-norm when true
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerConfig& config, Rng& rng = global_rng());

  // x (B, T, C); padding_mask (B, T), 1 = pad, or undefined -> (B, T, C).
  // Outputs at padded positions are meaningless; real positions do not depend on the padding.
  Tensor forward(const Tensor& x, const Tensor& padding_mask = Tensor()) const;

  const TransformerLayerConfig config;
  MultiheadAttention self_attn;
  LayerNorm self_attn_layer_norm;
  FeedForward ffn;  // its fc1, fc2 are registered on this layer
  LayerNorm final_layer_norm;
};

// Incremental state of one decoder layer, owned by the decoding loop.
struct TransformerDecoderLayerState {
  AttentionCache self_attn;     // (B, capacity, C) keys/values of the prefix
  AttentionCache encoder_attn;  // (B0, S, C) projected encoder output, filled at the first step
  void reorder(const std::vector<int64_t>& order) {
    self_attn.reorder(order);
    encoder_attn.reorder(order);
  }
};

class TransformerDecoderLayer : public Module {
 public:
  // encoder_attention = false gives the language-model layer (self-attention and FFN only).
  explicit TransformerDecoderLayer(const TransformerLayerConfig& config, bool encoder_attention = true,
                                   Rng& rng = global_rng());

  // Whole target prefixes (training, scoring). x (B, T, C); encoder_out (B, S, C) and
  // encoder_padding_mask (B, S) (1 = pad, may be undefined); leave both undefined without encoder
  // attention. Self-attention is causal. -> (B, T, C)
  Tensor forward(const Tensor& x, const Tensor& encoder_out = Tensor(),
                 const Tensor& encoder_padding_mask = Tensor()) const;

  // One decoding step under NoGrad: x (B, 1, C) is the newest position. Equals the last row of
  // forward() on the whole prefix. encoder_out / encoder_padding_mask are read at the first step
  // only (then cached in state, which follows reorder()).
  Tensor step(const Tensor& x, const Tensor& encoder_out, const Tensor& encoder_padding_mask,
              TransformerDecoderLayerState& state) const;

  bool has_encoder_attention() const { return encoder_attn != nullptr; }

  const TransformerLayerConfig config;
  MultiheadAttention self_attn;
  LayerNorm self_attn_layer_norm;
  std::unique_ptr<MultiheadAttention> encoder_attn;       // null for a language model
  std::unique_ptr<LayerNorm> encoder_attn_layer_norm;     // null for a language model
  FeedForward ffn;  // its fc1, fc2 are registered on this layer
  LayerNorm final_layer_norm;

 private:
  // The three sublayers after self-attention's, shared by forward() and step().
  Tensor after_self_attention(Tensor x, const Tensor& encoder_out, const Tensor& encoder_padding_mask,
                              TransformerDecoderLayerState* state) const;
};

}  // namespace payless
