// The encoder stack of the translator (spec §4.3 for LightConv/DynamicConv, §5.2 for the
// Transformer), fairseq's LightConvEncoder / TransformerEncoder:
//   x = dropout(sqrt(d)·E[source] + PE[positions])        positions from the left-padded source
//   x = layer_i(x, padding_mask) for each layer           kernel width K_i per conv layer
//   [x = LayerNorm(x)  only if normalize_before]
// It returns x (B, S, d) and the padding mask (B, S), 1 where the source is <pad>.
//
// Positions: real tokens are numbered pad+1, pad+2, ... and pads get the all-zero row, so left
// padding shifts nobody (layers/positional.h). The conv layers zero padded inputs after the GLU
// and the attention layers mask padded keys, so the outputs at real positions do not depend on how
// much padding the batch has; the outputs at padded positions are meaningless, and the decoder's
// encoder attention masks them out with the same mask.
// Parameter names: encoder.embed_tokens.weight, encoder.layers.i...., encoder.layer_norm.
// Not here: the decoder (models/decoder.h), the model that joins both (models/translation_model.h).
#pragma once

#include <memory>
#include <vector>

#include "layers/conv_layers.h"
#include "layers/embedding.h"
#include "layers/layer_norm.h"
#include "layers/positional.h"
#include "layers/transformer_layer.h"
#include "models/config.h"

namespace payless {

struct EncoderOutput {
  Tensor out;           // (B, S, d)
  Tensor padding_mask;  // (B, S), 1.0 = pad; undefined when no source token is padding (as the
                        // reference: then nothing needs masking)
};

class Encoder : public Module {
 public:
  // `shared_embedding`, if given, is the token embedding (owned by the caller, shared with the
  // decoder) and is registered here as `embed_tokens` too.
  Encoder(const ModelConfig& config, int64_t vocab, Embedding* shared_embedding, Rng& rng = global_rng());

  // source (B, S): ids ending with </s>, left-padded with <pad>.
  EncoderOutput forward(const IdTensor& source) const;

  int64_t vocab_size() const { return vocab_; }
  int64_t embed_dim() const { return stack_.embed_dim; }

 private:
  StackConfig stack_;
  float dropout_;
  int64_t vocab_;
  Embedding* embed_tokens_;
  std::unique_ptr<Embedding> own_embedding_;
  SinusoidalPositionalEmbedding sinusoidal_;
  std::unique_ptr<LearnedPositionalEmbedding> learned_positions_;
  std::vector<std::unique_ptr<LightConvEncoderLayer>> conv_layers_;
  std::vector<std::unique_ptr<TransformerEncoderLayer>> attention_layers_;
  std::unique_ptr<LayerNorm> layer_norm_;
};

// (B, S) ids -> (B, S) mask, 1.0 where the id is <pad>; undefined if there is none.
Tensor source_padding_mask(const IdTensor& source);

}  // namespace payless
