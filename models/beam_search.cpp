// See models/beam_search.h. The bookkeeping follows the reference's SequenceGenerator step by
// step (spec §8.1); comments name the places where a detail matters.
#include "models/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace payless {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Candidate {
  float score;    // cumulative: the parent's score + this token's log-probability
  int64_t index;  // beam · V + token, in the flattened (beam, V) block of one sentence
};

// Keeps `out` the best k entries offered so far by (score descending, index ascending), best
// first. A small sorted insertion list: almost every entry fails the first comparison.
inline void offer(std::vector<Candidate>& out, int64_t k, float v, int64_t i) {
  // Entries come in index order, so an equal score never beats one already kept.
  if (static_cast<int64_t>(out.size()) == k && !(v > out.back().score)) return;
  if (static_cast<int64_t>(out.size()) == k) out.pop_back();
  auto at = std::find_if(out.begin(), out.end(), [&](const Candidate& c) { return v > c.score; });
  out.insert(at, Candidate{v, i});
}

// What one hypothesis row offers for token v: its log-probability with the search's rules applied
// (NaN -> -inf, <pad> never, <unk> penalised, </s> forced at max_len or forbidden before
// min_len), plus the row's score so far. The arithmetic order is the reference's.
struct RowRules {
  float base;            // the hypothesis's cumulative score (0 at step 0)
  float unk_penalty;
  bool only_eos;         // step >= max_len
  bool no_eos;           // step < min_len
  float value(const float* lp, int64_t v) const {
    float x = std::isnan(lp[v]) ? kNegInf : lp[v];
    if (v == kPadId) x = kNegInf;
    if (v == kUnkId) x -= unk_penalty;
    if (only_eos ? v != kEosId : (no_eos && v == kEosId)) x = kNegInf;
    return x + base;
  }
};

// Offers the V entries of one row (indices offset + v) to the top-k list. The special tokens
// (ids below 4) and every row at max_len take the scalar rules; elsewhere the rules reduce to
// lp + base, and a block of 16 entries is offered one by one only when its best beats the k-th
// kept so far (one vectorised max per block: a pass over the row at about memory speed).
void offer_row(const float* lp, int64_t V, const RowRules& rules, int64_t offset, int64_t k,
               std::vector<Candidate>& out) {
  constexpr int64_t kBlock = 16;
  static_assert(kPadId < kBlock && kUnkId < kBlock && kEosId < kBlock, "special ids in the first block");
  const int64_t scalar_end = rules.only_eos ? V : std::min<int64_t>(V, kBlock);
  for (int64_t v = 0; v < scalar_end; ++v) offer(out, k, rules.value(lp, v), offset + v);
  const float base = rules.base;
  int64_t v = scalar_end;
  for (; v + kBlock <= V; v += kBlock) {
    if (static_cast<int64_t>(out.size()) == k) {
      float best = kNegInf;
#pragma omp simd reduction(max : best)
      for (int64_t t = 0; t < kBlock; ++t) {
        const float x = lp[v + t];
        const float y = x == x ? x + base : kNegInf;  // NaN counts as -inf
        best = y > best ? y : best;                    // vectorises, std::max does not
      }
      if (!(best > out.back().score)) continue;
    }
    for (int64_t t = 0; t < kBlock; ++t) {
      const float x = lp[v + t];
      offer(out, k, (x == x ? x : kNegInf) + base, offset + v + t);
    }
  }
  for (; v < V; ++v) {
    const float x = lp[v];
    offer(out, k, (x == x ? x : kNegInf) + base, offset + v);
  }
}

void check_options(const BeamSearchOptions& o, int64_t V) {
  if (o.beam < 1) fail("beam search: beam must be at least 1, got ", o.beam);
  if (o.nbest < 1 || o.nbest > o.beam)
    fail("beam search: nbest must be between 1 and the beam size ", o.beam, ", got ", o.nbest);
  if (o.min_len < 0) fail("beam search: min_len must not be negative, got ", o.min_len);
  if (o.max_positions < 2) fail("beam search: max_positions must be at least 2, got ", o.max_positions);
  if (!std::isfinite(o.max_len_a) || !std::isfinite(o.max_len_b))
    fail("beam search: max_len_a and max_len_b must be finite numbers");
  if (!std::isfinite(o.lenpen)) fail("beam search: lenpen must be a finite number");
  // Step 0 expands one beam into min(2·beam, V-1) candidates, at most one of them </s>: beam of
  // them must be left to continue.
  if (V < o.beam + 2)
    fail("beam search: a beam of ", o.beam, " needs a vocabulary of at least ", o.beam + 2,
         " entries, got ", V);
}

}  // namespace

int64_t max_output_length(int64_t S, const BeamSearchOptions& o) {
  // int(a·S + b) as the reference computes it (in double, truncated), capped by the positions.
  const double wanted = o.max_len_a * static_cast<double>(S) + o.max_len_b;
  const int64_t cap = o.max_positions - 1;
  if (!(wanted < static_cast<double>(cap))) return cap;
  return std::max<int64_t>(0, static_cast<int64_t>(wanted));
}

std::vector<std::vector<Hypothesis>> beam_search(StepScorer& scorer, const std::vector<int64_t>& source_lengths,
                                                 const BeamSearchOptions& options) {
  const int64_t V = scorer.vocab_size();
  check_options(options, V);
  const int64_t beam = options.beam, B = static_cast<int64_t>(source_lengths.size());
  std::vector<std::vector<Hypothesis>> finalized(B);
  if (B == 0) return finalized;
  std::vector<int64_t> max_len(B);
  for (int64_t s = 0; s < B; ++s) max_len[s] = max_output_length(source_lengths[s], options);

  // Rows: live sentence k (in `active`) owns rows [k·beam, (k+1)·beam). Per row: the generated
  // tokens so far and the cumulative score after each of them (the reference's scores buffer).
  std::vector<int64_t> active(B);
  std::iota(active.begin(), active.end(), 0);
  std::vector<std::vector<int32_t>> tokens(B * beam);
  std::vector<std::vector<float>> scores(B * beam);
  std::vector<int32_t> newest(B * beam, kEosId);  // </s> is the BOS of every hypothesis
  {
    std::vector<int64_t> expand(B * beam);
    for (int64_t i = 0; i < B * beam; ++i) expand[i] = i / beam;  // one row per sentence -> beam rows
    scorer.reorder(expand);
  }

  std::vector<Candidate> candidates;
  for (int64_t step = 0; !active.empty(); ++step) {
    const int64_t N = static_cast<int64_t>(newest.size());
    Tensor lprobs = scorer.step(newest);  // (N, V)
    if (lprobs.rank() != 2 || lprobs.size(0) != N || lprobs.size(1) != V)
      fail("beam search: the scorer returned ", lprobs.describe(), " for ", N, " rows; expected (", N, ", ", V, ")");

    std::vector<int64_t> next_active, order;
    std::vector<int32_t> next_newest;
    std::vector<std::vector<int32_t>> next_tokens;
    std::vector<std::vector<float>> next_scores;
    for (int64_t k = 0; k < static_cast<int64_t>(active.size()); ++k) {
      const int64_t s = active[k];
      // At step 0 every beam holds the same hypothesis: expand only the first.
      const int64_t beams_here = step == 0 ? 1 : beam;
      // The reference takes min(2·beam, size - 1) so that <pad> can never be needed.
      const int64_t n = beams_here * V, k_cand = std::min<int64_t>(2 * beam, n - 1);
      // Candidates over the (beams_here, V) block of this sentence, in index order beam·V + token.
      candidates.clear();
      for (int64_t j = 0; j < beams_here; ++j) {
        const int64_t row = k * beam + j;
        const RowRules rules{step == 0 ? 0.0f : scores[row].back(), options.unk_penalty,
                             step >= max_len[s], step < options.min_len};
        offer_row(lprobs.data() + row * V, V, rules, j * V, k_cand, candidates);
      }
      auto is_final_eos = [&](const Candidate& c) { return c.index % V == kEosId && c.score != kNegInf; };

      // </s> among the first beam candidates ends a hypothesis (a </s> further down does not).
      for (int64_t c = 0; c < std::min<int64_t>(beam, k_cand); ++c) {
        const Candidate& cand = candidates[c];
        if (!is_final_eos(cand) || static_cast<int64_t>(finalized[s].size()) >= beam) continue;
        const int64_t parent = k * beam + cand.index / V;
        Hypothesis h;
        h.tokens = tokens[parent];
        h.tokens.push_back(kEosId);
        float previous = 0.0f;
        for (float cumulative : scores[parent]) {
          h.positional_scores.push_back(cumulative - previous);
          previous = cumulative;
        }
        h.positional_scores.push_back(cand.score - previous);
        // Normalised by the length with </s> (step + 1), to the power lenpen.
        h.score = static_cast<float>(cand.score / std::pow(static_cast<double>(step + 1), double(options.lenpen)));
        finalized[s].push_back(std::move(h));
      }
      if (static_cast<int64_t>(finalized[s].size()) >= beam || step >= max_len[s]) continue;  // done

      // The best beam candidates that are not a final </s> continue, best first.
      next_active.push_back(s);
      int64_t kept = 0;
      for (const Candidate& cand : candidates) {
        if (kept == beam) break;
        if (is_final_eos(cand)) continue;
        const int64_t parent = k * beam + cand.index / V;
        const int32_t token = static_cast<int32_t>(cand.index % V);
        order.push_back(parent);
        next_newest.push_back(token);
        next_tokens.push_back(tokens[parent]);
        next_tokens.back().push_back(token);
        next_scores.push_back(scores[parent]);
        next_scores.back().push_back(cand.score);
        ++kept;
      }
      PAYLESS_ASSERT(kept == beam);  // guaranteed by check_options (see there)
    }
    active = std::move(next_active);
    if (active.empty()) break;
    newest = std::move(next_newest);
    tokens = std::move(next_tokens);
    scores = std::move(next_scores);
    scorer.reorder(order);
  }

  for (auto& hyps : finalized) {
    // Best first; stable, so equal scores keep the order in which they were finalised.
    std::stable_sort(hyps.begin(), hyps.end(), [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    if (static_cast<int64_t>(hyps.size()) > options.nbest) hyps.resize(options.nbest);
  }
  return finalized;
}

// ---- the translation model as a scorer

TranslationScorer::TranslationScorer(const TranslationModel& model, const IdTensor& source)
    : model_(model), state_(model.decoder.start_state()) {
  if (model.is_training()) fail("beam search: put the model in eval mode first (dropout is on)");
  NoGrad no_grad;
  encoded_ = model.encode(source);
}

Tensor TranslationScorer::step(const std::vector<int32_t>& tokens) {
  NoGrad no_grad;
  Tensor logits = model_.decoder.step(tokens, encoded_.out, encoded_.padding_mask, state_);  // (N, V)
  // Every layer has now cached its projected encoder keys/values (which reorder() moves along);
  // the encoder output itself is no longer read.
  encoded_ = EncoderOutput();
  return log_softmax(logits);
}

void TranslationScorer::reorder(const std::vector<int64_t>& order) {
  // Only the state: its encoder-attention caches remember reorders made before the first step
  // and then project the encoder output once per sentence, in its original order (see
  // AttentionCache in layers/attention.h), so encoded_ is never copied per hypothesis.
  state_.reorder(order);
}

IdTensor make_source_batch(const std::vector<std::vector<int32_t>>& sources) {
  const int64_t B = static_cast<int64_t>(sources.size());
  int64_t S = 0;
  for (const auto& s : sources) S = std::max<int64_t>(S, static_cast<int64_t>(s.size()) + 1);
  std::vector<int32_t> ids(B * S, kPadId);  // (B, S)
  for (int64_t b = 0; b < B; ++b) {
    // Left padding: the sentence and its </s> sit at the right end of the row (spec §0.4).
    int32_t* row = ids.data() + b * S + (S - static_cast<int64_t>(sources[b].size()) - 1);
    std::copy(sources[b].begin(), sources[b].end(), row);
    row[sources[b].size()] = kEosId;
  }
  return IdTensor(Shape{B, S}, std::move(ids));
}

std::vector<std::vector<Hypothesis>> translate(const TranslationModel& model,
                                               const std::vector<std::vector<int32_t>>& sources,
                                               const BeamSearchOptions& options, int64_t batch_size) {
  if (batch_size < 1) fail("translate: batch size must be at least 1, got ", batch_size);
  BeamSearchOptions o = options;
  o.max_positions = std::min(o.max_positions, model.config().decoder.max_positions);
  const int64_t n = static_cast<int64_t>(sources.size());
  // Similar lengths share a batch, so little work goes into padding.
  std::vector<int64_t> by_length(n);
  std::iota(by_length.begin(), by_length.end(), 0);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](int64_t a, int64_t b) { return sources[a].size() < sources[b].size(); });
  std::vector<std::vector<Hypothesis>> results(n);
  for (int64_t first = 0; first < n; first += batch_size) {
    const int64_t last = std::min(n, first + batch_size);
    std::vector<std::vector<int32_t>> batch;
    std::vector<int64_t> lengths;
    for (int64_t i = first; i < last; ++i) {
      batch.push_back(sources[by_length[i]]);
      lengths.push_back(static_cast<int64_t>(batch.back().size()) + 1);
    }
    TranslationScorer scorer(model, make_source_batch(batch));
    std::vector<std::vector<Hypothesis>> found = beam_search(scorer, lengths, o);
    for (int64_t i = first; i < last; ++i) results[by_length[i]] = std::move(found[i - first]);
  }
  return results;
}

}  // namespace payless
