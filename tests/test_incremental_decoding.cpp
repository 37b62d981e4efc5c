// The decoding fast paths: the encoder-decoder attention cache that keeps one projected source per
// sentence and follows beam reorders through a row map (layers/attention.h), checked against the
// full forward on explicitly reordered sources; beam search's candidate filter over a large
// vocabulary, against the same search over a small one. The model-level equality of incremental decoding
// and the full forward is in test_translation.cpp and test_lm_e2e.cpp.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/attention.h"
#include "layers/incremental.h"
#include "models/beam_search.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;

namespace {

void randomize(Module& m, uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, t] : m.named_parameters()) {
    Tensor p = t;
    rng.uniform_(p, -0.5f, 0.5f);
  }
}

}  // namespace

TEST_CASE("encoder attention cache: one source per sentence, reorders before and after the first step",
          "[layers][attention][incremental]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  randomize(mha, 31);
  mha.eval();
  const int64_t S = 5;
  Tensor encoder_out = random_input({3, S, 8}, 32);  // three sentences, in their original order
  Tensor mask = left_padding_mask({0, 2, 4}, S);
  // The beam expansion before the first step (sentence 1 gets three rows, sentence 0 two), then a
  // reorder that repeats, drops and interleaves rows of different sentences.
  const std::vector<int64_t> expand = {0, 0, 1, 1, 1, 2}, later = {4, 0, 5, 1, 1};
  AttentionCache cache;
  cache.reorder(expand);
  Tensor x1 = random_input({6, 1, 8}, 33), x2 = random_input({5, 1, 8}, 34);
  Tensor first = mha.step_encoder_attention(x1, encoder_out, mask, cache);
  CHECK(cache.keys.size(0) == 3);  // projected once per sentence, not per hypothesis
  Tensor src1 = reorder_batch(encoder_out, expand), mask1 = reorder_batch(mask, expand);
  CHECK(max_abs_diff(first, mha.forward(x1, src1, src1, mask1)) <= 1e-5f);

  cache.reorder(later);
  CHECK(cache.keys.size(0) == 3);  // a reorder copies nothing
  Tensor second = mha.step_encoder_attention(x2, Tensor(), Tensor(), cache);
  Tensor src2 = reorder_batch(src1, later), mask2 = reorder_batch(mask1, later);
  CHECK(max_abs_diff(second, mha.forward(x2, src2, src2, mask2)) <= 1e-5f);

  // Several steps at once (T' = 3) through the same map.
  Tensor x3 = random_input({5, 3, 8}, 35);
  CHECK(max_abs_diff(mha.step_encoder_attention(x3, Tensor(), Tensor(), cache),
                     mha.forward(x3, src2, src2, mask2)) <= 1e-5f);
}

TEST_CASE("encoder attention cache refuses reorders and inputs that do not fit", "[layers][attention][errors]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  mha.eval();
  Tensor encoder_out = random_input({2, 4, 8}, 36);
  {
    AttentionCache cache;
    cache.reorder({0, 3});  // row 3 does not exist, which only the first step can know
    CHECK_THROWS_WITH(mha.step_encoder_attention(random_input({2, 1, 8}, 37), encoder_out, Tensor(), cache),
                      Catch::Contains("row 3") && Catch::Contains("unreordered"));
  }
  {
    AttentionCache cache;
    cache.reorder({0, 1, 1});
    CHECK_THROWS_WITH(mha.step_encoder_attention(random_input({2, 1, 8}, 38), encoder_out, Tensor(), cache),
                      Catch::Contains("reordered to 3 rows"));
  }
  AttentionCache cache;
  mha.step_encoder_attention(random_input({2, 1, 8}, 39), encoder_out, Tensor(), cache);
  CHECK_THROWS_WITH(cache.reorder({0, 2}), Catch::Contains("index 2"));
  CHECK_THROWS_WITH(mha.step_encoder_attention(random_input({3, 1, 8}, 40), Tensor(), Tensor(), cache),
                    Catch::Contains("reorder the cache"));
}

namespace {

// Next-token log-probabilities from a fixed table over 40 tokens (specials 0-3, words 4-39),
// optionally spread over a vocabulary of 400: the specials keep their ids, word w moves to id
// 20 + 9·(w - 4), and the 360 new ids score -30 (below every table entry) or NaN. The same search
// must then find the same hypotheses, the words found by beam search's block filter past id 16.
class SpreadScorer : public StepScorer {
 public:
  SpreadScorer(bool spread, int64_t sentences) : V_(spread ? 400 : kWords), spread_(spread) {
    for (int64_t s = 0; s < sentences; ++s) rows_.push_back(static_cast<uint64_t>(s) + 1);
  }
  static constexpr int32_t kWords = 40;
  int64_t vocab_size() const override { return V_; }
  static int32_t id(int32_t w) { return w < 4 ? w : 20 + 9 * (w - 4); }
  Tensor step(const std::vector<int32_t>& tokens) override {
    REQUIRE(rows_.size() == tokens.size());
    Tensor out = Tensor::empty({static_cast<int64_t>(tokens.size()), V_});
    for (size_t r = 0; r < tokens.size(); ++r) {
      // A deterministic table: the row's state mixes in the last token fed.
      rows_[r] = rows_[r] * 31 + static_cast<uint64_t>(spread_ ? unspread(tokens[r]) : tokens[r]);
      float* row = out.data() + r * V_;
      for (int64_t v = 0; v < V_; ++v) row[v] = v % 9 == 5 ? NAN : -30.0f;
      for (int32_t w = 0; w < kWords; ++w) {
        // Values on a coarse grid, so that ties between tokens and between beams happen.
        const float lp = -0.25f * static_cast<float>((rows_[r] * 7 + static_cast<uint64_t>(w) * 13) % 23) - 0.25f;
        row[spread_ ? id(w) : w] = lp;
      }
    }
    return out;
  }
  void reorder(const std::vector<int64_t>& order) override {
    std::vector<uint64_t> next;
    for (int64_t i : order) next.push_back(rows_.at(i));
    rows_ = std::move(next);
  }
  static int32_t unspread(int32_t v) { return v < 4 ? v : 4 + (v - 20) / 9; }

 private:
  int64_t V_;
  bool spread_;
  std::vector<uint64_t> rows_;  // per row, a hash of the tokens fed so far
};

}  // namespace

TEST_CASE("beam search finds the same hypotheses in a large vocabulary (its block filter)",
          "[translation][beam]") {
  for (float unk_penalty : {0.0f, 0.75f}) {
    BeamSearchOptions o;
    o.beam = 4;
    o.nbest = 4;
    o.max_len_b = 8;
    o.min_len = 2;
    o.unk_penalty = unk_penalty;
    SpreadScorer small(false, 3), large(true, 3);
    auto a = beam_search(small, {5, 5, 5}, o), b = beam_search(large, {5, 5, 5}, o);
    REQUIRE(a.size() == b.size());
    for (size_t s = 0; s < a.size(); ++s) {
      REQUIRE(a[s].size() == b[s].size());
      for (size_t h = 0; h < a[s].size(); ++h) {
        INFO("unk_penalty " << unk_penalty << " sentence " << s << " hypothesis " << h);
        std::vector<int32_t> mapped;
        for (int32_t t : a[s][h].tokens) mapped.push_back(SpreadScorer::id(t));
        CHECK(b[s][h].tokens == mapped);
        CHECK(b[s][h].score == a[s][h].score);
        CHECK(b[s][h].positional_scores == a[s][h].positional_scores);
      }
    }
  }
}
