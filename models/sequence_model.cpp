// See models/sequence_model.h.
#include "models/sequence_model.h"

#include "models/language_model.h"
#include "models/translation_model.h"

namespace payless {

CrossEntropyResult SequenceModel::loss(const Batch& batch, float smoothing, SmoothingVariant variant) {
  Tensor logits = forward(batch);  // (B, T, V)
  return cross_entropy(logits, batch.target, kPadId, smoothing, variant);
}

std::unique_ptr<SequenceModel> build_model(const ModelConfig& config, uint64_t seed) {
  validate(config, "model config");
  Rng rng(seed);
  std::unique_ptr<SequenceModel> model;
  if (config.task == "lm") {
    if (config.target_vocab <= 0) fail("model config: target_vocab is not set (prepare the data first)");
    model = std::make_unique<LanguageModel>(config, rng);
  } else if (config.task == "translation") {
    model = std::make_unique<TranslationModel>(config, rng);
  } else {
    fail("model config: task '", config.task, "' has no model builder");
  }
  model->pack_parameters();
  return model;
}

namespace {

int64_t linear_parameters(int64_t in, int64_t out) { return in * out + out; }
int64_t layer_norm_parameters(int64_t d) { return 2 * d; }
int64_t attention_parameters(int64_t d) { return 4 * linear_parameters(d, d); }  // q, k, v, out

// One layer of a stack (spec §4.8), with g = 2 for GLU and 1 otherwise:
//   conv:        (d·gC + gC) + conv + (C·d + d) + FFN + 2 LN,   conv = H·K (lightweight), C·H·K (dynamic)
//   transformer: self-attention + LN + FFN + LN
//   decoder layers add encoder attention + LN when encoder_attention.
int64_t layer_parameters(const StackConfig& s, int64_t layer, bool encoder_attention) {
  const int64_t d = s.embed_dim, C = s.channels(), F = s.ffn_dim;
  const int64_t ffn = linear_parameters(d, F) + linear_parameters(F, d);
  int64_t n = ffn + 2 * layer_norm_parameters(d);
  if (s.block == "transformer") {
    n += attention_parameters(d);
  } else {
    const int64_t g = s.glu ? 2 : 1, K = s.kernel_size(layer);
    n += linear_parameters(d, g * C) + linear_parameters(C, d);
    n += s.block == "lightweight" ? s.heads * K : C * s.heads * K;
  }
  if (encoder_attention) n += attention_parameters(d) + layer_norm_parameters(d);
  return n;
}

// A stack's layers, learned positions and final LayerNorm; embeddings are counted by the caller.
int64_t stack_parameters(const StackConfig& s, bool encoder_attention, bool final_norm) {
  int64_t n = 0;
  for (int64_t i = 0; i < s.layers; ++i) n += layer_parameters(s, i, encoder_attention);
  if (s.learned_pos) n += (s.max_positions + kPadId + 1) * s.embed_dim;
  if (s.normalize_before && final_norm) n += layer_norm_parameters(s.embed_dim);
  return n;
}

}  // namespace

int64_t count_parameters(const ModelConfig& config) {
  validate(config, "model config");
  const StackConfig& dec = config.decoder;
  const int64_t V = config.target_vocab, d = dec.embed_dim;
  const bool tied_output = config.share_decoder_input_output_embed || config.share_all_embeddings;
  int64_t n = V * d + (tied_output ? 0 : V * d);  // decoder input (and output) embedding
  if (config.task == "lm") return n + stack_parameters(dec, /*encoder_attention=*/false, /*final_norm=*/false);
  n += stack_parameters(config.encoder, /*encoder_attention=*/false, /*final_norm=*/true);
  n += stack_parameters(dec, /*encoder_attention=*/true, /*final_norm=*/true);
  if (!config.share_all_embeddings) n += config.source_vocab * config.encoder.embed_dim;
  return n;
}

}  // namespace payless
