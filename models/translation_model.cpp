// See models/translation_model.h.
#include "models/translation_model.h"

namespace payless {
namespace {

// Checks what the model needs beyond validate(config) and makes the shared embedding, if any.
// Runs before the encoder and decoder are built (it initialises the first member).
std::unique_ptr<Embedding> checked_shared_embedding(const ModelConfig& c, Rng& rng) {
  if (c.task != "translation") fail("TranslationModel: config task is '", c.task, "', not 'translation'");
  if (c.source_vocab <= 0 || c.target_vocab <= 0)
    fail("model config: source_vocab and target_vocab must be set (prepare the data first), got ",
         c.source_vocab, " and ", c.target_vocab);
  // The decoder's encoder attention projects encoder outputs with d×d maps, so both sides need
  // the same width (the reference's separate kdim/vdim are not supported).
  if (c.encoder.embed_dim != c.decoder.embed_dim)
    fail("model config: encoder.embed_dim ", c.encoder.embed_dim, " and decoder.embed_dim ",
         c.decoder.embed_dim, " must be equal");
  if (!c.share_all_embeddings) return nullptr;
  if (c.source_vocab != c.target_vocab)
    fail("model config: share_all_embeddings needs one joined dictionary, but source_vocab is ",
         c.source_vocab, " and target_vocab ", c.target_vocab, " (prepare with a joined dictionary)");
  return std::make_unique<Embedding>(c.target_vocab, c.decoder.embed_dim, kPadId, rng);
}

// Sharing all embeddings includes sharing the decoder's input and output (spec §4.1); the config
// says so too, whoever built it.
ModelConfig with_implied_sharing(ModelConfig c) {
  if (c.share_all_embeddings) c.share_decoder_input_output_embed = true;
  return c;
}

}  // namespace

TranslationModel::TranslationModel(const ModelConfig& config, Rng& rng)
    : SequenceModel(with_implied_sharing(config)),
      shared_embedding_(checked_shared_embedding(this->config(), rng)),
      encoder(this->config(), this->config().source_vocab, shared_embedding_.get(), rng),
      decoder(this->config(), this->config().target_vocab, /*encoder_attention=*/true,
              /*final_norm=*/true, shared_embedding_.get(), rng) {
  register_module("encoder", encoder);
  register_module("decoder", decoder);
  name_parameters();
}

Tensor TranslationModel::forward(const Batch& batch) {
  if (batch.source.shape.rank() != 2 || batch.decoder_input.shape.rank() != 2 ||
      batch.source.shape[0] != batch.decoder_input.shape[0])
    fail("TranslationModel: source ", batch.source.shape.str(), " and decoder_input ",
         batch.decoder_input.shape.str(), " must be (B, S) and (B, T) with the same B");
  EncoderOutput encoded = encoder.forward(batch.source);
  return decoder.forward(batch.decoder_input, encoded.out, encoded.padding_mask);  // (B, T, V)
}

}  // namespace payless
