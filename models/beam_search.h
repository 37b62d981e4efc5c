// Beam search exactly as the reference's SequenceGenerator + BeamSearch (spec §8.1), batched over
// sentences, on incremental decoder state. Greedy decoding is beam = 1.
//
// For each sentence i (source length S_i with </s>), hypotheses start with </s> as BOS and
// scores are sums of token log-probabilities. At step = 0, 1, ...:
//   lprobs = log_softmax(logits) of every live hypothesis's next token;  lprobs[<pad>] = -inf,
//   lprobs[<unk>] -= unk_penalty, NaN -> -inf;  if step >= max_len_i only </s> is allowed,
//   else if step < min_len </s> is forbidden.
//   Candidates: the top 2·beam of (score + lprobs) over beam × V (at step 0 only beam 0, since all
//   beams are equal). A </s> candidate among the FIRST beam is finalised with the normalised score
//       (Σ log-probs including the </s>) / (step + 1)^lenpen       (step + 1 = length with </s>)
//   while the sentence has fewer than beam finalised hypotheses. The sentence is done when it has
//   beam of them, or at step = max_len_i. Otherwise the best beam non-</s> candidates continue,
//   and the model state is reordered to follow their parent hypotheses.
// There is no comparison with the best open hypothesis: the reference stops as soon as beam
// hypotheses are final. Finished sentences leave the batch (their rows are dropped by reorder()).
// Ties between candidates go to the lower (beam, token) index, so results are deterministic.
//
// One deliberate difference: max_len_i = min(floor(a·S_i + b), max_positions - 1) uses each
// sentence's OWN length S_i (with </s>), where the reference uses the padded length of the whole
// batch. The two agree for a sentence decoded alone (or in a batch of equal lengths); ours makes
// a translation independent of which sentences share its batch.
//
// The search is written against StepScorer, so that tests can drive it with a hand-made table of
// probabilities; TranslationScorer adapts a TranslationModel (encoder run once, Decoder::step
// with a DecoderState that follows every reorder).
#pragma once

#include <cstdint>
#include <vector>

#include "models/translation_model.h"

namespace payless {

// What beam search needs from a model: next-token log-probabilities for a set of rows
// (hypotheses) that it extends one token at a time and reorders between steps.
class StepScorer {
 public:
  virtual ~StepScorer() = default;
  virtual int64_t vocab_size() const = 0;
  // tokens: the newest token of every row (N) -> log-probabilities (N, V) of the next token.
  virtual Tensor step(const std::vector<int32_t>& tokens) = 0;
  // Row i becomes old row order[i] (rows may repeat or be dropped).
  virtual void reorder(const std::vector<int64_t>& order) = 0;
};

struct BeamSearchOptions {
  int64_t beam = 4;
  float lenpen = 1.0f;           // α: > 1 favours longer outputs, < 1 shorter
  double max_len_a = 0.0;        // max_len = a·S + b (the reference's defaults 0 and 200)
  double max_len_b = 200.0;
  int64_t max_positions = 1024;  // the decoder's; max_len <= max_positions - 1
  int64_t min_len = 1;           // </s> is forbidden before this many tokens
  float unk_penalty = 0.0f;
  int64_t nbest = 1;             // hypotheses returned per sentence (<= beam)
};

struct Hypothesis {
  std::vector<int32_t> tokens;          // generated ids, ending with </s>
  float score = 0;                      // normalised: Σ log-probs / len^lenpen
  std::vector<float> positional_scores; // log-probability of each token (same length as tokens)
};

// The largest number of generated tokens (without </s>) for a source of S tokens (with </s>).
int64_t max_output_length(int64_t S, const BeamSearchOptions& options);

// Searches for every sentence. The scorer holds one row per sentence in the order of
// source_lengths (S_i with </s>); the search first reorders it to beam rows per sentence.
// Returns, per sentence, its best min(nbest, beam) hypotheses, best first (ties in the order
// they were finalised).
std::vector<std::vector<Hypothesis>> beam_search(StepScorer& scorer, const std::vector<int64_t>& source_lengths,
                                                 const BeamSearchOptions& options);

// Runs a TranslationModel as a StepScorer: encodes `source` (B, S) once at construction (under
// NoGrad; the model must be in eval mode), then Decoder::step per token. The encoder output is
// needed only at the first step, when every layer caches its projected keys and values, once per
// sentence; reorders (also the expansion to beam rows before the first step) only change which
// sentence each row of the DecoderState reads.
class TranslationScorer : public StepScorer {
 public:
  TranslationScorer(const TranslationModel& model, const IdTensor& source);
  int64_t vocab_size() const override { return model_.decoder.vocab_size(); }
  Tensor step(const std::vector<int32_t>& tokens) override;
  void reorder(const std::vector<int64_t>& order) override;

 private:
  const TranslationModel& model_;
  EncoderOutput encoded_;  // (B, S, d) and (B, S), one row per sentence; released after the first step
  DecoderState state_;
};

// (B, S) left-padded batch of sources (ids without </s>; </s> is appended here).
IdTensor make_source_batch(const std::vector<std::vector<int32_t>>& sources);

// Translates sentences (ids without </s>) in batches of up to batch_size sentences, grouped by
// length to waste little work on padding; results come back in input order. Empty sources are
// allowed (the source is then just </s>).
std::vector<std::vector<Hypothesis>> translate(const TranslationModel& model,
                                               const std::vector<std::vector<int32_t>>& sources,
                                               const BeamSearchOptions& options, int64_t batch_size);

}  // namespace payless
