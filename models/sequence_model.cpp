// See models/sequence_model.h.
#include "models/sequence_model.h"

#include "models/language_model.h"

namespace payless {

CrossEntropyResult SequenceModel::loss(const Batch& batch, float smoothing, SmoothingVariant variant) {
  Tensor logits = forward(batch);  // (B, T, V)
  return cross_entropy(logits, batch.target, kPadId, smoothing, variant);
}

std::unique_ptr<SequenceModel> build_model(const ModelConfig& config, uint64_t seed) {
  validate(config, "model config");
  Rng rng(seed);
  if (config.task == "lm") {
    if (config.target_vocab <= 0) fail("model config: target_vocab is not set (prepare the data first)");
    return std::make_unique<LanguageModel>(config, rng);
  }
  fail("model config: task '", config.task, "' has no model builder");
}

}  // namespace payless
