// See models/language_model.h.
#include "models/language_model.h"

namespace payless {

LanguageModel::LanguageModel(const ModelConfig& config, Rng& rng)
    : SequenceModel(config),
      decoder(config, config.target_vocab, /*encoder_attention=*/false, /*final_norm=*/false, nullptr, rng) {
  if (config.task != "lm") fail("LanguageModel: config task is '", config.task, "', not 'lm'");
  register_module("decoder", decoder);
  name_parameters();
}

Tensor LanguageModel::forward(const Batch& batch) { return decoder.forward(batch.decoder_input); }

}  // namespace payless
