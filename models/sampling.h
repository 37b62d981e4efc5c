// Text generation from a language model: greedy, temperature and top-k sampling, with a seed.
//
// generate() feeds the prompt and then each chosen token through Decoder::step (incremental
// state: constant memory per conv layer, a key/value cache per attention layer).
// generate_full_forward() makes the same choices by running the whole prefix through forward()
// at every step; it exists so that tests can prove the incremental path computes the same thing.
// Random draw i of a sequence is uniform01(seed, 0, i), so both give identical samples.
#pragma once

#include <cstdint>
#include <vector>

#include "models/language_model.h"

namespace payless {

struct SamplingOptions {
  int64_t max_new_tokens = 50;
  bool greedy = false;        // argmax at every step (temperature and top_k ignored)
  float temperature = 1.0f;   // > 0; below 1 sharper, above 1 flatter
  int64_t top_k = 0;          // 0: the whole vocabulary
  uint64_t seed = 1;
  bool stop_at_eos = true;
  bool allow_special = false; // never pick <s>, <pad>, <unk> unless true (</s> stays allowed)
};

// prompt: token ids WITHOUT the leading </s> (added here, as in training). Returns the new tokens
// (ending with </s> if it was chosen and stop_at_eos).
std::vector<int32_t> generate(const LanguageModel& model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options);
std::vector<int32_t> generate_full_forward(LanguageModel& model, const std::vector<int32_t>& prompt,
                                           const SamplingOptions& options);

// The choice made from one row of logits (V) at draw number `draw` (exposed for tests).
int32_t choose_token(const float* logits, int64_t V, const SamplingOptions& options, uint64_t draw);

}  // namespace payless
