// The LightConv/DynamicConv encoder and decoder layers (spec §4.3, §4.4), fairseq's
// LightConvEncoderLayer / LightConvDecoderLayer: the Transformer layer with its self-attention
// sublayer replaced by a convolution block.
//
// Conv block (both layers; bracketed steps depend on normalize_before, post-norm by default):
//   r = x; [x = LN(x) if pre]
//   x = dropout(x, input_dropout)
//   x = linear1(x)                          d -> 2C with GLU, else d -> C
//   x = GLU(x)                              with GLU: first half ⊙ σ(second half)
//   x[t] = 0 at padded t                    encoder only: after the GLU, before the conv
//   x = conv(x)                             encoder P = K/2 (odd K), decoder causal P = K-1
//   x = dropout(linear2(x), dropout)        C -> d
//   x = r + x; [x = LN(x) if post]
// Decoder only, unless it is a language-model layer: encoder-decoder attention, same residual
// pattern. Both: the FFN  x = r + dropout(fc2(dropout(relu(fc1(x)), relu_dropout)), dropout).
//
// Parameter names (current reference names, spec §4.9): linear1, linear2, conv.weight (lightweight)
// or conv.weight_linear.weight (dynamic), fc1, fc2; encoder layer_norm1 (conv block) and
// layer_norm2 (FFN); decoder conv_layer_norm, encoder_attn, encoder_attn_layer_norm,
// final_layer_norm.
// What is not here: embeddings, the layer stacks, the final LayerNorm of a pre-norm stack (models/).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/attention.h"
#include "layers/conv_common.h"
#include "layers/dynamic_conv.h"
#include "layers/feed_forward.h"
#include "layers/layer_norm.h"
#include "layers/lightweight_conv.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace payless {

enum class ConvType { kLightweight, kDynamic };

struct LightConvLayerConfig {
  int64_t embed_dim = 512;           // d
  int64_t conv_dim = 512;            // C (fairseq encoder_conv_dim / decoder_conv_dim)
  int64_t ffn_dim = 1024;            // F
  int64_t heads = 4;                 // H: the conv's heads and the encoder-decoder attention's
  int64_t kernel_size = 3;           // K of this layer (the stacks pass kernel_size_list[i])
  ConvType conv_type = ConvType::kDynamic;
  bool glu = true;
  bool normalize_before = false;     // pre-norm when true (forced on for the language model)
  bool weight_softmax = true;
  float dropout = 0.1f;              // after linear2, encoder attention and fc2
  float input_dropout = 0.1f;        // before linear1
  float relu_dropout = 0.0f;         // between ReLU and fc2
  float attention_dropout = 0.0f;    // on encoder-decoder attention probabilities
  float weight_dropout = 0.0f;       // DropConnect on the conv kernel (spec §1.4)
};

// A layer's conv: exactly one of the two is set, registered under the name "conv".
struct ConvChoice {
  ConvChoice(const LightConvLayerConfig& config, int64_t padding_l, Rng& rng);
  Module& module();
  Tensor forward(const Tensor& x, Rng& rng) const;          // (B, T, C) -> (B, T, C)
  Tensor step(const Tensor& x, ConvState& state) const;     // (N, 1, C) -> (N, 1, C)

  std::unique_ptr<LightweightConv> lightweight;
  std::unique_ptr<DynamicConv> dynamic;
};

class LightConvEncoderLayer : public Module {
 public:
  // The conv is centred, P = K/2; K must be odd (the reference cannot run even encoder kernels
  // either, spec §1.5).
  explicit LightConvEncoderLayer(const LightConvLayerConfig& config, Rng& rng = global_rng());

  // x (B, T, d); padding_mask (B, T), 1 = pad, or undefined -> (B, T, d). Real positions do not
  // depend on how much padding the batch has; outputs at padded positions are meaningless.
  // The layer's own dropouts and DropConnect draw from `rng`; the FFN's relu_dropout uses
  // global_rng() (layers/feed_forward.h).
  Tensor forward(const Tensor& x, const Tensor& padding_mask = Tensor(), Rng& rng = global_rng()) const;

  const LightConvLayerConfig config;
  Linear linear1;  // d -> 2C with GLU, else d -> C
  ConvChoice conv;
  Linear linear2;  // C -> d
  FeedForward ffn;  // its fc1, fc2 are registered on this layer
  LayerNorm layer_norm1;  // conv block
  LayerNorm layer_norm2;  // FFN
};

// Incremental state of one decoder layer, owned by the decoding loop.
struct LightConvDecoderLayerState {
  ConvState conv;               // (N, <= K-1, C) last conv inputs
  AttentionCache encoder_attn;  // (N0, S, C) projected encoder output, filled at the first step
  void reorder(const std::vector<int64_t>& order) {
    conv.reorder(order);
    encoder_attn.reorder(order);
  }
};

class LightConvDecoderLayer : public Module {
 public:
  // The conv is causal, P = K-1. encoder_attention = false gives the language-model layer.
  explicit LightConvDecoderLayer(const LightConvLayerConfig& config, bool encoder_attention = true,
                                 Rng& rng = global_rng());

  // Whole target prefixes (training, scoring). x (B, T, d); encoder_out (B, S, d) and
  // encoder_padding_mask (B, S) (1 = pad, may be undefined); leave both undefined without encoder
  // attention. Randomness as in the encoder layer. -> (B, T, d)
  Tensor forward(const Tensor& x, const Tensor& encoder_out = Tensor(),
                 const Tensor& encoder_padding_mask = Tensor(), Rng& rng = global_rng()) const;

  // One decoding step under NoGrad: x (N, 1, d) is the newest position -> (N, 1, d), equal to the
  // last row of forward() on the whole prefix (in eval mode). encoder_out / encoder_padding_mask
  // are read at the first step only, then cached in state, which follows reorder().
  Tensor step(const Tensor& x, const Tensor& encoder_out, const Tensor& encoder_padding_mask,
              LightConvDecoderLayerState& state, Rng& rng = global_rng()) const;

  bool has_encoder_attention() const { return encoder_attn != nullptr; }

  const LightConvLayerConfig config;
  Linear linear1;
  ConvChoice conv;
  Linear linear2;
  LayerNorm conv_layer_norm;
  std::unique_ptr<MultiheadAttention> encoder_attn;    // null for a language model
  std::unique_ptr<LayerNorm> encoder_attn_layer_norm;  // null for a language model
  FeedForward ffn;  // its fc1, fc2 are registered on this layer
  LayerNorm final_layer_norm;

 private:
  // Everything after the conv block, shared by forward() and step() (state null in forward()).
  Tensor after_conv(Tensor x, const Tensor& encoder_out, const Tensor& encoder_padding_mask,
                    LightConvDecoderLayerState* state, Rng& rng) const;
};

}  // namespace payless
