// What the trainer, evaluation and decoding need from a model, and the batch they feed it.
//
// Both the decoder-only language model (models/language_model.h) and the encoder-decoder
// translator (models/translation_model.h) are SequenceModels: a batch of token ids in, logits over
// the target vocabulary out, and the label-smoothed loss on top. The token conventions are the
// reference's (spec §0.4): <s>=0, <pad>=1, </s>=2, <unk>=3; targets end with </s>; the decoder
// input is the target shifted right with </s> in front; sources are left-padded.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "layers/module.h"
#include "models/config.h"

namespace payless {

constexpr int32_t kBosId = 0, kPadId = 1, kEosId = 2, kUnkId = 3;

struct Batch {
  IdTensor source;         // (B, S), left-padded; empty for a language model
  IdTensor decoder_input;  // (B, T), right-padded
  IdTensor target;         // (B, T), right-padded with kPadId
  int64_t target_tokens = 0;  // non-pad entries of target: the loss is normalised by this
};

class SequenceModel : public Module {
 public:
  explicit SequenceModel(ModelConfig config) : config_(std::move(config)) {}
  const ModelConfig& config() const { return config_; }

  // Teacher-forced logits (B, T, V) for the batch.
  virtual Tensor forward(const Batch& batch) = 0;

  // Summed label-smoothed loss, summed NLL and token count over the batch's non-pad targets.
  virtual CrossEntropyResult loss(const Batch& batch, float smoothing, SmoothingVariant variant);

 private:
  ModelConfig config_;
};

// Builds the model a config describes (a LanguageModel for task "lm", an encoder-decoder for
// "translation"), initialised from `seed`, its parameters packed into one block
// (Module::pack_parameters).
std::unique_ptr<SequenceModel> build_model(const ModelConfig& config, uint64_t seed);

// What build_model(config, seed)->num_parameters() returns, counted from the config alone (the
// per-layer formulas of spec §4.8), so that the big models can be sized without allocating them.
int64_t count_parameters(const ModelConfig& config);

}  // namespace payless
