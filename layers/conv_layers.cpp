// See layers/conv_layers.h for the block structure; only ops and layers here.
#include "layers/conv_layers.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace payless {
namespace {

void check_config(const char* layer, const LightConvLayerConfig& c) {
  if (c.embed_dim <= 0 || c.conv_dim <= 0 || c.ffn_dim <= 0 || c.heads <= 0 || c.kernel_size <= 0)
    fail(layer, ": embed_dim, conv_dim, ffn_dim, heads and kernel_size must be positive, got ",
         c.embed_dim, ", ", c.conv_dim, ", ", c.ffn_dim, ", ", c.heads, ", ", c.kernel_size);
  const std::pair<const char*, float> probabilities[] = {
      {"dropout", c.dropout},
      {"input_dropout", c.input_dropout},
      {"relu_dropout", c.relu_dropout},
      {"attention_dropout", c.attention_dropout},
      {"weight_dropout", c.weight_dropout}};
  for (const auto& [name, p] : probabilities)
    if (!(p >= 0.0f && p < 1.0f)) fail(layer, ": ", name, " must be in [0, 1), got ", p);
}

const LightConvLayerConfig& checked_encoder_config(const LightConvLayerConfig& c) {
  check_config("LightConvEncoderLayer", c);
  if (c.kernel_size % 2 == 0)
    fail("LightConvEncoderLayer: kernel_size ", c.kernel_size,
         " is even; a centred encoder conv needs an odd kernel (spec §1.5)");
  return c;
}

const LightConvLayerConfig& checked_decoder_config(const LightConvLayerConfig& c) {
  check_config("LightConvDecoderLayer", c);
  return c;
}

// One residual sublayer, both orderings (spec §4.3):
//   pre-norm:  x + dropout(f(LN(x)))        post-norm:  LN(x + dropout(f(x)))
template <typename Sublayer>
Tensor residual(const Tensor& x, const LayerNorm& norm, bool normalize_before, float p,
                bool training, Rng& rng, Sublayer f) {
  Tensor h = f(normalize_before ? norm.forward(x) : x);
  h = add(x, dropout(h, p, training, rng));
  return normalize_before ? h : norm.forward(h);
}

// The inside of the conv block's residual:
//   linear2( conv( zero_pads( GLU( linear1( dropout(x, input_dropout) ) ) ) ) )
// apply_conv is the full-sequence conv or one decoding step.
template <typename ApplyConv>
Tensor conv_sublayer(const Tensor& x, const LightConvLayerConfig& c, const Linear& linear1,
                     const Linear& linear2, const Tensor& padding_mask, bool training, Rng& rng,
                     ApplyConv apply_conv) {
  Tensor h = dropout(x, c.input_dropout, training, rng);  // (B, T, d)
  h = linear1.forward(h);                                 // (B, T, 2C) with GLU, else (B, T, C)
  if (c.glu) h = glu(h);                                  // (B, T, C)
  if (padding_mask.defined()) {
    // Padded inputs then contribute exact zeros to their neighbours' windows, like the zero
    // padding at the sequence edge, so real positions do not see the padding (spec §4.3).
    const int64_t B = h.size(0), T = h.size(1);
    if (padding_mask.shape() != Shape{B, T})
      fail("LightConvEncoderLayer: padding_mask ", padding_mask.describe(), " must be (B, T) = (",
           B, ", ", T, ") to match x");
    h = masked_fill(h, reshape(padding_mask, {B, T, 1}), 0.0f);
  }
  h = apply_conv(h);         // (B, T, C)
  return linear2.forward(h);  // (B, T, d)
}

void check_layer_input(const char* layer, const Tensor& x, int64_t embed_dim) {
  if (!x.defined() || x.rank() != 3 || x.size(2) != embed_dim)
    fail(layer, ": input must be (B, T, d) with d = ", embed_dim, ", got ",
         x.defined() ? x.describe() : std::string("an undefined tensor"));
}

}  // namespace

// ---- ConvChoice

ConvChoice::ConvChoice(const LightConvLayerConfig& c, int64_t padding_l, Rng& rng) {
  if (c.conv_type == ConvType::kLightweight)
    lightweight = std::make_unique<LightweightConv>(c.conv_dim, c.kernel_size, c.heads, padding_l,
                                                    c.weight_softmax, c.weight_dropout,
                                                    /*bias=*/false, rng);
  else
    dynamic = std::make_unique<DynamicConv>(c.conv_dim, c.kernel_size, c.heads, padding_l,
                                            c.weight_softmax, c.weight_dropout, /*bias=*/false, rng);
}

Module& ConvChoice::module() {
  return lightweight ? static_cast<Module&>(*lightweight) : static_cast<Module&>(*dynamic);
}

Tensor ConvChoice::forward(const Tensor& x, Rng& rng) const {
  return lightweight ? lightweight->forward(x, rng) : dynamic->forward(x, rng);
}

Tensor ConvChoice::step(const Tensor& x, ConvState& state) const {
  return lightweight ? lightweight->step(x, state) : dynamic->step(x, state);
}

// ---- encoder

LightConvEncoderLayer::LightConvEncoderLayer(const LightConvLayerConfig& c, Rng& rng)
    : config(checked_encoder_config(c)),
      linear1(c.embed_dim, c.glu ? 2 * c.conv_dim : c.conv_dim, true, rng),
      conv(c, c.kernel_size / 2, rng),
      linear2(c.conv_dim, c.embed_dim, true, rng),
      ffn(c.embed_dim, c.ffn_dim, c.relu_dropout, rng),
      layer_norm1(c.embed_dim),
      layer_norm2(c.embed_dim) {
  register_module("linear1", linear1);
  register_module("conv", conv.module());
  register_module("linear2", linear2);
  register_module("fc1", ffn.fc1);
  register_module("fc2", ffn.fc2);
  register_module("layer_norm1", layer_norm1);
  register_module("layer_norm2", layer_norm2);
}

Tensor LightConvEncoderLayer::forward(const Tensor& x, const Tensor& padding_mask, Rng& rng) const {
  check_layer_input("LightConvEncoderLayer", x, config.embed_dim);
  const bool pre = config.normalize_before, training = is_training();
  Tensor h = residual(x, layer_norm1, pre, config.dropout, training, rng, [&](const Tensor& y) {
    return conv_sublayer(y, config, linear1, linear2, padding_mask, training, rng,
                         [&](const Tensor& u) { return conv.forward(u, rng); });
  });
  return residual(h, layer_norm2, pre, config.dropout, training, rng,
                  [&](const Tensor& y) { return ffn.forward(y, training); });
}

// ---- decoder

LightConvDecoderLayer::LightConvDecoderLayer(const LightConvLayerConfig& c, bool encoder_attention,
                                             Rng& rng)
    : config(checked_decoder_config(c)),
      linear1(c.embed_dim, c.glu ? 2 * c.conv_dim : c.conv_dim, true, rng),
      conv(c, c.kernel_size - 1, rng),
      linear2(c.conv_dim, c.embed_dim, true, rng),
      conv_layer_norm(c.embed_dim),
      encoder_attn(encoder_attention ? std::make_unique<MultiheadAttention>(
                                           c.embed_dim, c.heads, c.attention_dropout, true, rng)
                                     : nullptr),
      encoder_attn_layer_norm(encoder_attention ? std::make_unique<LayerNorm>(c.embed_dim) : nullptr),
      ffn(c.embed_dim, c.ffn_dim, c.relu_dropout, rng),
      final_layer_norm(c.embed_dim) {
  register_module("linear1", linear1);
  register_module("conv", conv.module());
  register_module("linear2", linear2);
  register_module("conv_layer_norm", conv_layer_norm);
  if (encoder_attention) {
    register_module("encoder_attn", *encoder_attn);
    register_module("encoder_attn_layer_norm", *encoder_attn_layer_norm);
  }
  register_module("fc1", ffn.fc1);
  register_module("fc2", ffn.fc2);
  register_module("final_layer_norm", final_layer_norm);
}

namespace {
void check_encoder_arguments(bool has_encoder_attention, const Tensor& encoder_out, bool first_step) {
  if (has_encoder_attention && first_step && !encoder_out.defined())
    fail("LightConvDecoderLayer: this layer has encoder attention but no encoder_out was given");
  if (!has_encoder_attention && encoder_out.defined())
    fail("LightConvDecoderLayer: encoder_out ", encoder_out.describe(),
         " given to a layer without encoder attention (a language-model layer)");
}
}  // namespace

Tensor LightConvDecoderLayer::after_conv(Tensor x, const Tensor& encoder_out,
                                         const Tensor& encoder_padding_mask,
                                         LightConvDecoderLayerState* state, Rng& rng) const {
  const bool pre = config.normalize_before, training = is_training();
  if (encoder_attn) {
    x = residual(x, *encoder_attn_layer_norm, pre, config.dropout, training, rng,
                 [&](const Tensor& y) {
                   return state ? encoder_attn->step_encoder_attention(
                                      y, encoder_out, encoder_padding_mask, state->encoder_attn)
                                : encoder_attn->forward(y, encoder_out, encoder_out,
                                                        encoder_padding_mask);
                 });
  }
  return residual(x, final_layer_norm, pre, config.dropout, training, rng,
                  [&](const Tensor& y) { return ffn.forward(y, training); });
}

Tensor LightConvDecoderLayer::forward(const Tensor& x, const Tensor& encoder_out,
                                      const Tensor& encoder_padding_mask, Rng& rng) const {
  check_layer_input("LightConvDecoderLayer", x, config.embed_dim);
  check_encoder_arguments(has_encoder_attention(), encoder_out, true);
  const bool training = is_training();
  // No padding mask: the target is right-padded and the conv is causal, so padding cannot reach
  // a real position (spec §4.4).
  Tensor h = residual(x, conv_layer_norm, config.normalize_before, config.dropout, training, rng,
                      [&](const Tensor& y) {
                        return conv_sublayer(y, config, linear1, linear2, Tensor(), training, rng,
                                             [&](const Tensor& u) { return conv.forward(u, rng); });
                      });
  return after_conv(h, encoder_out, encoder_padding_mask, nullptr, rng);
}

Tensor LightConvDecoderLayer::step(const Tensor& x, const Tensor& encoder_out,
                                   const Tensor& encoder_padding_mask,
                                   LightConvDecoderLayerState& state, Rng& rng) const {
  NoGrad no_grad;
  check_layer_input("LightConvDecoderLayer", x, config.embed_dim);
  check_encoder_arguments(has_encoder_attention(), encoder_out, state.encoder_attn.empty());
  const bool training = is_training();
  Tensor h = residual(x, conv_layer_norm, config.normalize_before, config.dropout, training, rng,
                      [&](const Tensor& y) {
                        return conv_sublayer(y, config, linear1, linear2, Tensor(), training, rng,
                                             [&](const Tensor& u) { return conv.step(u, state.conv); });
                      });
  return after_conv(h, encoder_out, encoder_padding_mask, &state, rng);
}

}  // namespace payless
