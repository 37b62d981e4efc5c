// Batches of token ids for training and evaluation, with fairseq's conventions, and iterators
// whose position can be saved in a checkpoint and restored exactly.
//
// Language modelling (LmBatcher), as fairseq's TokenBlockDataset with break mode "none":
//   the corpus is one stream, every sentence followed by </s>:  s = a b c </s> d e </s> ...
//   cut into contiguous blocks of L = tokens_per_sample targets (the last may be shorter).
//   Block j predicts s[jL .. jL+L) from the token before each: input = s[jL-1 .. jL+L-1) with
//   s[-1] = </s> (the stream starts as if a sentence had just ended). So input and target are
//   the same window shifted by one, and every token of the stream is a target exactly once per
//   epoch. A batch holds max_tokens / L blocks; blocks are shuffled anew every epoch.
//
// Translation (TranslationBatcher), as fairseq's LanguagePairDataset:
//   source         = x1..xm </s>, LEFT-padded   (B, S)
//   target         = y1..yn </s>, right-padded  (B, T)
//   decoder_input  = </s> y1..yn, right-padded  (B, T)  (target shifted right by one)
//   Lengths count the </s>. Pairs longer than max_source_len / max_target_len are skipped and
//   counted. Pairs are sorted by (source length, target length), ties in seeded random order,
//   and packed greedily so that B * max(S, T) <= max_tokens (the padded size). The batches are
//   fixed once; their order is shuffled anew every epoch.
//
// Padding is <pad> = 1 everywhere; a loss must ignore target positions holding it.
// Shuffling uses SplitMix64 and our own Fisher-Yates, so the order is the same on every
// platform and compiler (std::shuffle's algorithm is unspecified).
//
// Not here: the ids themselves (text/corpus.h), model code.
#pragma once

#include <cstdint>
#include <vector>

#include "text/corpus.h"

namespace payless {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a constant, then mixed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased (rejection); n > 0

 private:
  uint64_t state_;
};

// Fisher-Yates shuffle of 0..n-1 driven by SplitMix64(seed).
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed);

// The seed of an epoch's shuffle, derived from the run's seed.
uint64_t epoch_seed(uint64_t seed, int64_t epoch);

// Where an iterator stands: the next batch it returns is batch `index` (0-based) of epoch
// `epoch` (0-based). Saving these two numbers and restoring them (with the same corpus and
// options) makes the iterator continue exactly where it was.
struct BatchPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const BatchPosition& o) const { return epoch == o.epoch && index == o.index; }
};

// ---- language modelling ------------------------------------------------------------------------

struct LmBatchOptions {
  int64_t tokens_per_sample = 512;  // L
  int64_t max_tokens = 4096;        // blocks per batch = max_tokens / L (must be >= L)
  uint64_t seed = 1;
  bool shuffle = true;              // false: blocks in corpus order (evaluation)
};

struct LmBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> input;      // (B, T), right-padded with <pad>
  std::vector<int32_t> target;     // (B, T), right-padded with <pad>
  std::vector<int64_t> block_ids;  // (B) block j covers stream targets [jL, jL+L)
  int64_t num_tokens = 0;          // targets that are not padding
};

class LmBatcher {
 public:
  // Copies the corpus into its stream; the corpus may go away afterwards.
  LmBatcher(const Corpus& corpus, const LmBatchOptions& options);

  int64_t stream_length() const { return static_cast<int64_t>(stream_.size()); }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t blocks_per_batch() const { return blocks_per_batch_; }
  int64_t batches_per_epoch() const;

  // The batch at position(), then advances (to the next epoch after the last batch).
  LmBatch next();
  // Any batch, without moving the position.
  LmBatch batch(const BatchPosition& at);

  BatchPosition position() const { return position_; }
  // Throws payless::Error for a position outside this corpus's epochs.
  void set_position(const BatchPosition& position);

 private:
  const std::vector<int64_t>& block_order(int64_t epoch);

  LmBatchOptions options_;
  std::vector<int32_t> stream_;  // all sentences, each followed by </s>
  int64_t num_blocks_ = 0, blocks_per_batch_ = 0;
  BatchPosition position_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

// ---- translation ----------------------------------------------------------------------------

struct TranslationBatchOptions {
  int64_t max_tokens = 4096;       // B * max(S, T) <= max_tokens
  int64_t max_sentences = 0;       // B <= max_sentences; 0 = no limit
  int64_t max_source_len = 1024;   // with </s>; longer pairs are skipped
  int64_t max_target_len = 1024;   // with </s>; longer pairs are skipped
  uint64_t seed = 1;
  bool shuffle = true;             // false: batches in length order, ties in corpus order
};

struct TranslationBatch {
  int64_t B = 0, S = 0, T = 0;
  std::vector<int32_t> source;          // (B, S) x1..xm </s>, left-padded
  std::vector<int32_t> target;          // (B, T) y1..yn </s>, right-padded
  std::vector<int32_t> decoder_input;   // (B, T) </s> y1..yn, right-padded
  std::vector<int32_t> source_lengths;  // (B) with </s>
  std::vector<int32_t> target_lengths;  // (B) with </s>
  std::vector<int64_t> sentence_ids;    // (B) line index of each pair in the corpus
  int64_t num_source_tokens = 0, num_target_tokens = 0;  // not padding
};

// Throws payless::Error naming both corpora and their sentence counts unless they are equal.
void check_parallel(const Corpus& source, const Corpus& target);

class TranslationBatcher {
 public:
  // Training/evaluation on pairs; the corpora are copied in (move them to avoid the copy).
  TranslationBatcher(Corpus source, Corpus target, const TranslationBatchOptions& options);
  // Source only (translating new text): target fields of the batches are empty, T = 0.
  TranslationBatcher(Corpus source, const TranslationBatchOptions& options);

  int64_t num_pairs() const;        // kept
  int64_t num_skipped() const { return num_skipped_; }  // over-long pairs left out
  int64_t batches_per_epoch() const { return static_cast<int64_t>(batches_.size()); }

  TranslationBatch next();
  TranslationBatch batch(const BatchPosition& at);
  BatchPosition position() const { return position_; }
  void set_position(const BatchPosition& position);

 private:
  void plan();
  int64_t batch_number(const BatchPosition& at);  // which of batches_ is served at `at`

  Corpus source_, target_;
  bool has_target_;
  TranslationBatchOptions options_;
  std::vector<std::vector<int64_t>> batches_;  // sentence ids of each batch
  int64_t num_skipped_ = 0;
  BatchPosition position_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

}  // namespace payless
