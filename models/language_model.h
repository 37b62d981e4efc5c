// The decoder-only language model (spec §4.7, the reference's `lightconv_lm`): a decoder stack
// without encoder attention, pre-norm, no final LayerNorm, predicting the next token.
// Blocks are LightConv, DynamicConv or Transformer layers (config.decoder.block).
// Sampling with incremental state is in models/sampling.h.
#pragma once

#include "models/decoder.h"
#include "models/sequence_model.h"

namespace payless {

class LanguageModel : public SequenceModel {
 public:
  LanguageModel(const ModelConfig& config, Rng& rng = global_rng());
  // batch.decoder_input (B, T) -> logits (B, T, V)
  Tensor forward(const Batch& batch) override;
  Decoder decoder;
};

}  // namespace payless
