// Batching for language modelling and translation. Conventions are described in batching.h.
#include "text/batching.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "text/dictionary.h"

namespace payless {

// ---- deterministic shuffling ----------------------------------------------------------------

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t n) {
  PAYLESS_ASSERT(n > 0);
  // Values below 2^64 mod n would make small results more likely; draw again for those.
  const uint64_t reject_below = (0 - n) % n;
  for (;;) {
    const uint64_t r = next();
    if (r >= reject_below) return r % n;
  }
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  SplitMix64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[rng.below(static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  // Two mixing rounds so that nearby (seed, epoch) pairs give unrelated streams.
  SplitMix64 base(seed);
  SplitMix64 mixed(base.next() + static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ULL);
  return mixed.next();
}

namespace {

// Validates a position against an epoch length; index == batches means "start of next epoch".
BatchPosition normalized(const BatchPosition& at, int64_t batches, const char* who) {
  if (at.epoch < 0 || at.index < 0 || at.index > batches) {
    fail(who, ": batch position (epoch ", at.epoch, ", index ", at.index,
         ") is outside the data: an epoch has ", batches,
         " batches (was the position saved with other data or batching options?)");
  }
  if (at.index == batches) return {at.epoch + 1, 0};
  return at;
}

}  // namespace

// ---- language modelling ------------------------------------------------------------------------

LmBatcher::LmBatcher(const Corpus& corpus, const LmBatchOptions& options) : options_(options) {
  const int64_t L = options.tokens_per_sample;
  if (L < 1) fail("language model batches: tokens_per_sample must be >= 1, got ", L);
  if (options.max_tokens < L) {
    fail("language model batches: max_tokens (", options.max_tokens,
         ") must be at least tokens_per_sample (", L, "): a batch holds whole blocks");
  }
  if (corpus.num_sentences() == 0) fail(corpus.name(), ": empty corpus (no sentences)");
  stream_.reserve(static_cast<size_t>(corpus.num_tokens() + corpus.num_sentences()));
  for (int64_t i = 0; i < corpus.num_sentences(); ++i) {
    stream_.insert(stream_.end(), corpus.sentence(i), corpus.sentence(i) + corpus.sentence_length(i));
    stream_.push_back(Dictionary::kEos);
  }
  num_blocks_ = (stream_length() + L - 1) / L;
  blocks_per_batch_ = options.max_tokens / L;
}

int64_t LmBatcher::batches_per_epoch() const {
  return (num_blocks_ + blocks_per_batch_ - 1) / blocks_per_batch_;
}

const std::vector<int64_t>& LmBatcher::block_order(int64_t epoch) {
  if (cached_epoch_ != epoch) {
    if (options_.shuffle) {
      cached_order_ = shuffled_indices(num_blocks_, epoch_seed(options_.seed, epoch));
    } else {
      cached_order_.resize(static_cast<size_t>(num_blocks_));
      std::iota(cached_order_.begin(), cached_order_.end(), int64_t{0});
    }
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

LmBatch LmBatcher::batch(const BatchPosition& where) {
  const BatchPosition at = normalized(where, batches_per_epoch(), "language model batches");
  const std::vector<int64_t>& order = block_order(at.epoch);
  const int64_t L = options_.tokens_per_sample, n = stream_length();
  const int64_t first = at.index * blocks_per_batch_;
  const int64_t last = std::min(first + blocks_per_batch_, num_blocks_);

  LmBatch batch;
  batch.B = last - first;
  for (int64_t k = first; k < last; ++k) {
    batch.block_ids.push_back(order[k]);
    batch.T = std::max(batch.T, std::min(L, n - order[k] * L));
  }
  batch.input.assign(static_cast<size_t>(batch.B * batch.T), Dictionary::kPad);   // (B, T)
  batch.target.assign(static_cast<size_t>(batch.B * batch.T), Dictionary::kPad);  // (B, T)
  for (int64_t b = 0; b < batch.B; ++b) {
    const int64_t start = batch.block_ids[b] * L;
    const int64_t length = std::min(L, n - start);
    for (int64_t t = 0; t < length; ++t) {
      const int64_t s = start + t;
      batch.target[b * batch.T + t] = stream_[s];
      batch.input[b * batch.T + t] = s == 0 ? Dictionary::kEos : stream_[s - 1];
    }
    batch.num_tokens += length;
  }
  return batch;
}

LmBatch LmBatcher::next() {
  LmBatch out = batch(position_);
  position_ = normalized({position_.epoch, position_.index + 1}, batches_per_epoch(),
                         "language model batches");
  return out;
}

void LmBatcher::set_position(const BatchPosition& position) {
  position_ = normalized(position, batches_per_epoch(), "language model batches");
}

// ---- translation ----------------------------------------------------------------------------

void check_parallel(const Corpus& source, const Corpus& target) {
  if (source.num_sentences() != target.num_sentences()) {
    fail("parallel corpus is not aligned: ", source.name(), " has ", source.num_sentences(),
         " sentences but ", target.name(), " has ", target.num_sentences(),
         " (the two sides must have the same number of lines, line i translating line i)");
  }
}

TranslationBatcher::TranslationBatcher(Corpus source, Corpus target,
                                       const TranslationBatchOptions& options)
    : source_(std::move(source)), target_(std::move(target)), has_target_(true),
      options_(options) {
  check_parallel(source_, target_);
  plan();
}

TranslationBatcher::TranslationBatcher(Corpus source, const TranslationBatchOptions& options)
    : source_(std::move(source)), has_target_(false), options_(options) {
  plan();
}

int64_t TranslationBatcher::num_pairs() const {
  int64_t n = 0;
  for (const auto& b : batches_) n += static_cast<int64_t>(b.size());
  return n;
}

void TranslationBatcher::plan() {
  const TranslationBatchOptions& o = options_;
  if (o.max_tokens < 1 || o.max_source_len < 1 || o.max_target_len < 1 || o.max_sentences < 0) {
    fail("translation batches: max_tokens (", o.max_tokens, "), max_source_len (",
         o.max_source_len, ") and max_target_len (", o.max_target_len,
         ") must be >= 1 and max_sentences (", o.max_sentences, ") >= 0");
  }
  const int64_t n = source_.num_sentences();
  if (n == 0) fail(source_.name(), ": empty corpus (no sentences)");
  const auto src_len = [&](int64_t i) { return source_.sentence_length(i) + 1; };  // + </s>
  const auto tgt_len = [&](int64_t i) {
    return has_target_ ? target_.sentence_length(i) + 1 : int64_t{0};
  };

  // Order: seeded random (or corpus order), then stable sorts make length the primary key,
  // so ties between equal lengths stay in that order (fairseq sorts the same way).
  std::vector<int64_t> order;
  if (o.shuffle) {
    order = shuffled_indices(n, epoch_seed(o.seed, -1));
  } else {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return tgt_len(a) < tgt_len(b); });
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return src_len(a) < src_len(b); });

  // Greedy packing under the padded-size budget.
  num_skipped_ = 0;
  batches_.clear();
  std::vector<int64_t> current;
  int64_t current_max = 0;
  for (int64_t i : order) {
    const int64_t size = std::max(src_len(i), tgt_len(i));
    if (src_len(i) > o.max_source_len || tgt_len(i) > o.max_target_len || size > o.max_tokens) {
      ++num_skipped_;
      continue;
    }
    const int64_t new_max = std::max(current_max, size);
    const int64_t new_count = static_cast<int64_t>(current.size()) + 1;
    if (!current.empty() && (new_max * new_count > o.max_tokens ||
                             (o.max_sentences > 0 && new_count > o.max_sentences))) {
      batches_.push_back(std::move(current));
      current.clear();
      current_max = 0;
    }
    current.push_back(i);
    current_max = std::max(current_max, size);
  }
  if (!current.empty()) batches_.push_back(std::move(current));
  if (batches_.empty()) {
    fail(source_.name(), ": all ", n, " sentence pairs are longer than the limits (max_source_len ",
         o.max_source_len, ", max_target_len ", o.max_target_len, ", max_tokens ", o.max_tokens,
         "): nothing to batch");
  }
}

int64_t TranslationBatcher::batch_number(const BatchPosition& at) {
  if (!options_.shuffle) return at.index;
  if (cached_epoch_ != at.epoch) {
    cached_order_ = shuffled_indices(batches_per_epoch(), epoch_seed(options_.seed, at.epoch));
    cached_epoch_ = at.epoch;
  }
  return cached_order_[at.index];
}

TranslationBatch TranslationBatcher::batch(const BatchPosition& where) {
  const BatchPosition at = normalized(where, batches_per_epoch(), "translation batches");
  const std::vector<int64_t>& ids = batches_[batch_number(at)];

  TranslationBatch batch;
  batch.B = static_cast<int64_t>(ids.size());
  batch.sentence_ids = ids;
  for (int64_t i : ids) {
    batch.source_lengths.push_back(static_cast<int32_t>(source_.sentence_length(i) + 1));
    batch.S = std::max<int64_t>(batch.S, batch.source_lengths.back());
    if (has_target_) {
      batch.target_lengths.push_back(static_cast<int32_t>(target_.sentence_length(i) + 1));
      batch.T = std::max<int64_t>(batch.T, batch.target_lengths.back());
    }
  }
  const int64_t B = batch.B, S = batch.S, T = batch.T;
  batch.source.assign(static_cast<size_t>(B * S), Dictionary::kPad);          // (B, S)
  batch.target.assign(static_cast<size_t>(B * T), Dictionary::kPad);          // (B, T)
  batch.decoder_input.assign(static_cast<size_t>(B * T), Dictionary::kPad);   // (B, T)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = ids[b];
    // Source, left-padded: the row ends with x1..xm </s>.
    const int64_t m = source_.sentence_length(i);
    int32_t* row = batch.source.data() + b * S + (S - (m + 1));
    std::copy(source_.sentence(i), source_.sentence(i) + m, row);
    row[m] = Dictionary::kEos;
    batch.num_source_tokens += m + 1;
    if (!has_target_) continue;
    // Target y1..yn </s> and decoder input </s> y1..yn, both right-padded.
    const int64_t len = target_.sentence_length(i);
    const int32_t* y = target_.sentence(i);
    int32_t* tgt = batch.target.data() + b * T;
    int32_t* dec = batch.decoder_input.data() + b * T;
    std::copy(y, y + len, tgt);
    tgt[len] = Dictionary::kEos;
    dec[0] = Dictionary::kEos;
    std::copy(y, y + len, dec + 1);
    batch.num_target_tokens += len + 1;
  }
  return batch;
}

TranslationBatch TranslationBatcher::next() {
  TranslationBatch out = batch(position_);
  position_ = normalized({position_.epoch, position_.index + 1}, batches_per_epoch(),
                         "translation batches");
  return out;
}

void TranslationBatcher::set_position(const BatchPosition& position) {
  position_ = normalized(position, batches_per_epoch(), "translation batches");
}

}  // namespace payless
