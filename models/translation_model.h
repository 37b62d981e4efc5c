// The encoder-decoder translator (the reference's `lightconv` models and the Transformer
// baseline): an Encoder (models/encoder.h) over the left-padded source and a Decoder
// (models/decoder.h) with encoder-decoder attention in every layer and, for a pre-norm stack, a
// final LayerNorm.
//   logits = decoder(batch.decoder_input, encoder(batch.source))       (B, T, V_tgt)
//
// Embedding sharing (spec §4.1):
//   share_all_embeddings: one V×d matrix is the encoder input, decoder input and decoder output
//     embedding. Needs one joined dictionary (V_src = V_tgt) and equal encoder/decoder dims.
//     It is listed once, as encoder.embed_tokens.weight.
//   share_decoder_input_output_embed: the decoder's output layer reuses decoder.embed_tokens.
//   Neither: decoder.output_projection.weight is a V_tgt×d matrix of its own (no bias).
// Beam search over this model is in models/beam_search.h.
#pragma once

#include <memory>

#include "models/decoder.h"
#include "models/encoder.h"
#include "models/sequence_model.h"

namespace payless {

class TranslationModel : public SequenceModel {
 public:
  // config.task must be "translation", with source_vocab and target_vocab set.
  TranslationModel(const ModelConfig& config, Rng& rng = global_rng());

  // batch.source (B, S), batch.decoder_input (B, T) -> logits (B, T, V_tgt)
  Tensor forward(const Batch& batch) override;
  EncoderOutput encode(const IdTensor& source) const { return encoder.forward(source); }

 private:
  std::unique_ptr<Embedding> shared_embedding_;  // only with share_all_embeddings; declared first
                                                 // so it exists before encoder and decoder
 public:
  Encoder encoder;
  Decoder decoder;
};

}  // namespace payless
