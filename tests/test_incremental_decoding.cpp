// The decoding fast paths: the encoder-decoder attention cache that keeps one projected source per
// sentence and follows beam reorders through a row map (layers/attention.h), checked against the
// full forward on explicitly reordered sources. The model-level equality of incremental decoding
// and the full forward is in test_translation.cpp and test_lm_e2e.cpp.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/attention.h"
#include "layers/incremental.h"
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

// (B, S) mask with `pads[b]` padded positions at the left of row b.
Tensor left_padding_mask(const std::vector<int64_t>& pads, int64_t S) {
  Tensor mask = Tensor::zeros({static_cast<int64_t>(pads.size()), S});
  for (size_t b = 0; b < pads.size(); ++b)
    for (int64_t s = 0; s < pads[b]; ++s) mask.data()[b * S + s] = 1.0f;
  return mask;
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
