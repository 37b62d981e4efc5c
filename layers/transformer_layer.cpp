// See layers/transformer_layer.h.
#include "layers/transformer_layer.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace payless {
namespace {

void check_config(const TransformerLayerConfig& c) {
  if (c.embed_dim <= 0 || c.ffn_dim <= 0 || c.heads <= 0)
    fail("transformer layer: embed_dim, ffn_dim and heads must be positive, got ", c.embed_dim, ", ",
         c.ffn_dim, ", ", c.heads);
  for (float p : {c.dropout, c.attention_dropout, c.relu_dropout})
    if (p < 0.0f || p >= 1.0f) fail("transformer layer: dropout probabilities must be in [0, 1), got ", p);
}

// One residual sublayer, both orderings (spec §5.2):
//   pre-norm:  x + dropout(f(LN(x)))        post-norm:  LN(x + dropout(f(x)))
template <typename Sublayer>
Tensor residual(const Tensor& x, const LayerNorm& norm, bool normalize_before, float p, bool training,
                Sublayer f) {
  Tensor h = f(normalize_before ? norm.forward(x) : x);
  h = add(x, dropout(h, p, training));
  return normalize_before ? h : norm.forward(h);
}

}  // namespace

// ---- encoder

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerConfig& c, Rng& rng)
    : config((check_config(c), c)),
      self_attn(c.embed_dim, c.heads, c.attention_dropout, true, rng),
      self_attn_layer_norm(c.embed_dim),
      ffn(c.embed_dim, c.ffn_dim, c.relu_dropout, rng),
      final_layer_norm(c.embed_dim) {
  register_module("self_attn", self_attn);
  register_module("self_attn_layer_norm", self_attn_layer_norm);
  register_module("fc1", ffn.fc1);
  register_module("fc2", ffn.fc2);
  register_module("final_layer_norm", final_layer_norm);
}

Tensor TransformerEncoderLayer::forward(const Tensor& x, const Tensor& padding_mask) const {
  const bool pre = config.normalize_before, training = is_training();
  Tensor h = residual(x, self_attn_layer_norm, pre, config.dropout, training, [&](const Tensor& y) {
    return self_attn.forward(y, y, y, padding_mask);  // (B, T, C)
  });
  return residual(h, final_layer_norm, pre, config.dropout, training,
                  [&](const Tensor& y) { return ffn.forward(y, training); });
}

// ---- decoder

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerConfig& c, bool encoder_attention,
                                                 Rng& rng)
    : config((check_config(c), c)),
      self_attn(c.embed_dim, c.heads, c.attention_dropout, true, rng),
      self_attn_layer_norm(c.embed_dim),
      encoder_attn(encoder_attention
                       ? std::make_unique<MultiheadAttention>(c.embed_dim, c.heads, c.attention_dropout, true, rng)
                       : nullptr),
      encoder_attn_layer_norm(encoder_attention ? std::make_unique<LayerNorm>(c.embed_dim) : nullptr),
      ffn(c.embed_dim, c.ffn_dim, c.relu_dropout, rng),
      final_layer_norm(c.embed_dim) {
  register_module("self_attn", self_attn);
  register_module("self_attn_layer_norm", self_attn_layer_norm);
  if (encoder_attention) {
    register_module("encoder_attn", *encoder_attn);
    register_module("encoder_attn_layer_norm", *encoder_attn_layer_norm);
  }
  register_module("fc1", ffn.fc1);
  register_module("fc2", ffn.fc2);
  register_module("final_layer_norm", final_layer_norm);
}

Tensor TransformerDecoderLayer::after_self_attention(Tensor x, const Tensor& encoder_out,
                                                     const Tensor& encoder_padding_mask,
                                                     TransformerDecoderLayerState* state) const {
  const bool pre = config.normalize_before, training = is_training();
  if (encoder_attn) {
    x = residual(x, *encoder_attn_layer_norm, pre, config.dropout, training, [&](const Tensor& y) {
      return state ? encoder_attn->step_encoder_attention(y, encoder_out, encoder_padding_mask,
                                                          state->encoder_attn)
                   : encoder_attn->forward(y, encoder_out, encoder_out, encoder_padding_mask);
    });
  }
  return residual(x, final_layer_norm, pre, config.dropout, training,
                  [&](const Tensor& y) { return ffn.forward(y, training); });
}

namespace {
void check_encoder_arguments(bool has_encoder_attention, const Tensor& encoder_out, bool first_step) {
  if (has_encoder_attention && first_step && !encoder_out.defined())
    fail("TransformerDecoderLayer: this layer has encoder attention but no encoder_out was given");
  if (!has_encoder_attention && encoder_out.defined())
    fail("TransformerDecoderLayer: encoder_out ", encoder_out.describe(),
         " given to a layer without encoder attention (a language-model layer)");
}
}  // namespace

Tensor TransformerDecoderLayer::forward(const Tensor& x, const Tensor& encoder_out,
                                        const Tensor& encoder_padding_mask) const {
  check_encoder_arguments(has_encoder_attention(), encoder_out, true);
  Tensor h = residual(x, self_attn_layer_norm, config.normalize_before, config.dropout, is_training(),
                      [&](const Tensor& y) { return self_attn.forward(y, y, y, Tensor(), /*causal=*/true); });
  return after_self_attention(h, encoder_out, encoder_padding_mask, nullptr);
}

Tensor TransformerDecoderLayer::step(const Tensor& x, const Tensor& encoder_out,
                                     const Tensor& encoder_padding_mask,
                                     TransformerDecoderLayerState& state) const {
  NoGrad no_grad;
  check_encoder_arguments(has_encoder_attention(), encoder_out, state.encoder_attn.empty());
  Tensor h = residual(x, self_attn_layer_norm, config.normalize_before, config.dropout, is_training(),
                      [&](const Tensor& y) { return self_attn.step_self_attention(y, state.self_attn); });
  return after_self_attention(h, encoder_out, encoder_padding_mask, &state);
}

}  // namespace payless
