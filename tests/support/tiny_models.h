// The smallest model configs the model-level tests build: d = 16, 2 layers, 2 heads, FFN 32.
// Small enough that a forward and backward pass takes milliseconds, large enough to have every
// part of the real model (embeddings, both layer norms, the block, the tied output layer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"

namespace payless::testing {

// A language model with `block` ("transformer", "lightweight" or "dynamic") over `vocab` tokens.
inline ModelConfig tiny_lm_config(const std::string& block, int64_t vocab,
                                  std::vector<int64_t> kernel_sizes = {3}) {
  ModelConfig c = model_preset(block == "transformer" ? "lm_transformer_small" : "lm_dynamic_small");
  c.decoder.block = block;
  c.decoder.embed_dim = 16;
  c.decoder.ffn_dim = 32;
  c.decoder.layers = 2;
  c.decoder.heads = 2;
  c.decoder.kernel_sizes = std::move(kernel_sizes);
  c.target_vocab = vocab;
  return c;
}

}  // namespace payless::testing
