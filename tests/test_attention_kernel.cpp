// Tests for the fused attention kernels, core/kernels/attention.h, and the op attention().
//   [attention][kernel]: the decoding-step kernel against its double-precision reference loop over
//     the layouts it is given (cache capacity beyond the filled length, a row map, padding masks,
//     causal queries), with 1 and 2 threads and the same bits at both.
//   [attention][op]: the whole-sequence op against the ops it replaces (per-head matmuls,
//     masked_fill, softmax, dropout with the same stream), output and gradients, with 1 and 2
//     threads; its gradients against finite differences; its errors.
// That the layer's step equals the whole-sequence attention is tested in test_attention.cpp and
// test_incremental_decoding.cpp.
#include <catch2/catch.hpp>

#include <vector>

#include "core/autograd.h"
#include "core/kernels/attention.h"
#include "core/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

namespace {

using namespace payless;
using namespace payless::testing;

constexpr float kMasked = -1e30f;

struct StepCase {
  int64_t N, T, H, D, L, capacity, cache_rows;
  bool causal, with_rows, with_mask;
};

// Runs `fast` (or the reference) on random q, cache and mask for one case; returns out (N, T, C).
std::vector<float> run_case(const StepCase& c, bool fast, uint64_t seed) {
  const int64_t C = c.H * c.D;
  const std::vector<float> q = random_values(c.N * c.T * C, seed, -2.0f, 2.0f);
  const std::vector<float> keys = random_values(c.cache_rows * c.capacity * C, seed + 1);
  const std::vector<float> values = random_values(c.cache_rows * c.capacity * C, seed + 2);
  std::vector<float> mask(c.cache_rows * c.L, 0.0f);
  for (int64_t r = 0; r < c.cache_rows; ++r)
    for (int64_t l = 0; l < r % 3; ++l) mask[r * c.L + l] = 1.0f;  // left padding of 0, 1, 2
  if (c.cache_rows > 2)  // a row whose every position is padding: the plain average of its values
    std::fill(mask.begin() + 2 * c.L, mask.begin() + 3 * c.L, 1.0f);
  std::vector<int64_t> rows(c.N);
  for (int64_t n = 0; n < c.N; ++n) rows[n] = (n * 7 + 1) % c.cache_rows;
  std::vector<float> out(c.N * c.T * C, -7.0f);
  kernels::CachedAttention a;
  a.rows = c.N;
  a.queries = c.T;
  a.heads = c.H;
  a.head_dim = c.D;
  a.length = c.L;
  a.q = q.data();
  a.keys = keys.data();
  a.values = values.data();
  a.cache_stride = c.capacity * C;
  a.row_of = c.with_rows ? rows.data() : nullptr;
  if (c.with_mask) {
    a.mask = mask.data();
    a.mask_stride = c.L;
  }
  a.causal = c.causal;
  a.out = out.data();
  if (fast) kernels::attend_cached(a, kMasked);
  else kernels::attend_cached_reference(a, kMasked);
  return out;
}

}  // namespace

TEST_CASE("attend_cached equals its reference loop", "[attention][kernel]") {
  const std::vector<StepCase> cases = {
      // N, T, H, D, L, capacity, cache rows, causal, row map, mask
      {1, 1, 4, 128, 50, 64, 1, true, false, false},   // an iwslt greedy step
      {1, 1, 4, 16, 1, 32, 1, true, false, false},     // the first step: one key
      {3, 2, 2, 7, 9, 12, 3, true, false, false},      // two new queries, odd head size
      {8, 1, 4, 64, 32, 32, 2, false, true, true},     // beams over two padded sources
      {5, 3, 3, 5, 6, 6, 4, false, true, true},        // a fully padded source row
      {32, 1, 4, 64, 120, 160, 32, true, false, false},  // large enough to split over threads
  };
  for (const StepCase& c : cases) {
    INFO("N=" << c.N << " T=" << c.T << " H=" << c.H << " D=" << c.D << " L=" << c.L
              << " causal=" << c.causal << " rows=" << c.with_rows << " mask=" << c.with_mask);
    const std::vector<float> want = run_case(c, false, 40);
    check_same_bits_at_1_and_2_threads([&] {
      std::vector<float> got = run_case(c, true, 40);
      CHECK(count_mismatches(got, want, 1e-5, 1e-4) == 0);
      return got;
    });
  }
}

TEST_CASE("attend_cached: a causal query sees only the positions up to its own", "[attention][kernel]") {
  // One head, D = 1, keys all 0 (uniform scores): query t of T = 3 over L = 5 positions averages
  // values 0 .. L - T + t, i.e. values (1, 2, 3, 4, 5) give 2, 2.5, 3.
  const std::vector<float> q = {1, 1, 1}, keys(5, 0.0f), values = {1, 2, 3, 4, 5};
  std::vector<float> out(3);
  kernels::CachedAttention a;
  a.rows = 1;
  a.queries = 3;
  a.heads = 1;
  a.head_dim = 1;
  a.length = 5;
  a.q = q.data();
  a.keys = keys.data();
  a.values = values.data();
  a.cache_stride = 5;
  a.causal = true;
  a.out = out.data();
  kernels::attend_cached(a, kMasked);
  CHECK(out[0] == Approx(2.0f));
  CHECK(out[1] == Approx(2.5f));
  CHECK(out[2] == Approx(3.0f));
}

// ---- attention(): the fused whole-sequence op

namespace {

// The op composed of the ops it replaces: per-head batched matmuls, masked_fill, softmax, dropout.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t H,
                          const Tensor& mask, bool causal, float p, uint64_t seed, uint64_t stream,
                          float masked = kMasked) {
  const int64_t B = q.size(0), T = q.size(1), S = k.size(1), C = q.size(2), D = C / H;
  auto split = [&](const Tensor& x) { return transpose(reshape(x, {B, x.size(1), H, D}), 1, 2); };
  Tensor s = matmul(split(q), split(k), false, true);  // (B, H, T, S)
  if (causal) {
    Tensor future = Tensor::zeros({T, S});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = t + S - T + 1; j < S; ++j) future.data()[t * S + j] = 1.0f;
    s = masked_fill(s, future, masked);
  }
  if (mask.defined()) s = masked_fill(s, reshape(mask, {B, 1, 1, S}), masked);
  Tensor probs = dropout(softmax(s), p, true, seed, stream);
  return reshape(transpose(matmul(probs, split(v)), 1, 2), {B, T, C});
}

struct OpCase {
  int64_t B, T, S, H, D;
  bool causal, masked;
  float p;
  float masked_score = kMasked;
};

}  // namespace

TEST_CASE("attention() equals the composed ops, forward and backward", "[attention][op]") {
  const std::vector<OpCase> cases = {
      {2, 5, 7, 2, 3, false, true, 0.0f},   // encoder-decoder shape, padding
      {3, 6, 6, 4, 16, true, false, 0.3f},  // decoder self-attention with dropout
      {2, 3, 5, 1, 8, true, true, 0.5f},    // causal with T < S, padding, dropout
      {3, 4, 4, 2, 4, false, true, 0.2f},   // a row whose keys are all padding
      // Causal products skip what causality hides, tile by tile (4 and 8 rows, 16, 32 and 64
      // columns): sizes across several tiles with partial ones, D past a multiple of 16, a row
      // with one padded key (skipping) and one whose first query sees only padding (no skipping).
      {3, 37, 37, 2, 16, true, true, 0.1f},
      {3, 29, 45, 3, 20, true, true, 0.0f},
      {2, 40, 40, 1, 33, true, false, 0.2f},
      // 64-column tiles (S or D of 64 and more), with partial ones after them.
      {2, 70, 75, 2, 70, true, true, 0.1f},
      {2, 66, 130, 1, 64, false, true, 0.2f},
      // A masked score whose exp does not vanish: hidden keys keep a share, nothing is skipped.
      {2, 37, 40, 2, 16, true, true, 0.1f, -2.0f},
  };
  for (const OpCase& c : cases) {
    INFO("B=" << c.B << " T=" << c.T << " S=" << c.S << " H=" << c.H << " D=" << c.D
              << " causal=" << c.causal << " masked=" << c.masked << " p=" << c.p);
    const int64_t C = c.H * c.D;
    Tensor mask = c.masked ? left_padding_mask({1, c.S, 0}, c.S) : Tensor();
    if (c.masked) mask = narrow(mask, 0, 0, c.B);
    auto run = [&](bool fused) {
      Tensor q = random_input({c.B, c.T, C}, 50, -2, 2), k = random_input({c.B, c.S, C}, 51, -2, 2),
             v = random_input({c.B, c.S, C}, 52);
      Tensor out = fused ? attention(q, k, v, c.H, mask, c.causal, c.masked_score, c.p, true, 9, 4)
                         : composed_attention(q, k, v, c.H, mask, c.causal, c.p, 9, 4, c.masked_score);
      backward(sum(mul(out, random_input(out.shape(), 53))));
      return std::vector<Tensor>{out, q.grad(), k.grad(), v.grad()};
    };
    const std::vector<Tensor> want = run(false);
    check_same_bits_at_1_and_2_threads([&] {
      const std::vector<Tensor> got = run(true);
      std::vector<float> all;
      for (size_t i = 0; i < got.size(); ++i) {
        // Relative to the largest value: with D = 70 the gradients reach 10, where two
        // summation orders differ by 2e-5.
        float largest = 1.0f;
        for (float x : want[i].to_vector()) largest = std::max(largest, std::fabs(x));
        INFO("tensor " << i << " (out, dq, dk, dv), largest |value| " << largest);
        CHECK(max_abs_diff(got[i], want[i]) <= 1e-5f * largest);
        const std::vector<float> values = got[i].to_vector();
        all.insert(all.end(), values.begin(), values.end());
      }
      return all;
    });
  }
}

TEST_CASE("attention() gradients match finite differences", "[attention][op][gradcheck]") {
  const Tensor mask = left_padding_mask({0, 2}, 5);
  check_gradients("attention, padding and dropout",
                  {random_input({2, 4, 6}, 60), random_input({2, 5, 6}, 61), random_input({2, 5, 6}, 62)},
                  [&](const std::vector<Tensor>& in) {
                    return attention(in[0], in[1], in[2], 2, mask, false, kMasked, 0.25f, true, 3, 1);
                  });
  check_gradients("attention, causal, T < S",
                  {random_input({2, 3, 4}, 63), random_input({2, 5, 4}, 64), random_input({2, 5, 4}, 65)},
                  [&](const std::vector<Tensor>& in) {
                    return attention(in[0], in[1], in[2], 2, Tensor(), true, kMasked, 0.0f, true, 3, 1);
                  });
  // One tensor as query, key and value: the three gradients add into one buffer.
  check_gradients("attention, q = k = v", {random_input({2, 4, 6}, 66)}, [&](const std::vector<Tensor>& in) {
    return attention(in[0], in[0], in[0], 3, Tensor(), true, kMasked, 0.1f, true, 3, 2);
  });
}

TEST_CASE("attention() names what does not fit", "[attention][op][errors]") {
  Tensor q = Tensor::zeros({2, 3, 8}), k = Tensor::zeros({2, 4, 8});
  CHECK_THROWS_WITH(attention(q, k, Tensor::zeros({2, 5, 8}), 2, Tensor(), false, kMasked, 0, false, 0, 0),
                    Catch::Contains("[2, 5, 8]"));
  CHECK_THROWS_WITH(attention(q, k, k, 3, Tensor(), false, kMasked, 0, false, 0, 0),
                    Catch::Contains("3 heads"));
  CHECK_THROWS_WITH(attention(q, k, k, 2, Tensor::zeros({2, 3}), false, kMasked, 0, false, 0, 0),
                    Catch::Contains("key_padding_mask") && Catch::Contains("[2, 4]"));
  CHECK_THROWS_WITH(attention(k, q, q, 2, Tensor(), true, kMasked, 0, false, 0, 0),
                    Catch::Contains("at least as many keys"));
  CHECK_THROWS_WITH(attention(q, k, k, 2, Tensor(), false, kMasked, 1.0f, true, 0, 0),
                    Catch::Contains("[0, 1)"));
}

TEST_CASE("cached_attention() names what does not fit", "[attention][op][errors]") {
  NoGrad no_grad;
  Tensor q = Tensor::zeros({2, 1, 8}), cache = Tensor::zeros({2, 5, 8});
  CHECK(cached_attention(q, cache, cache, 3, 2, {}, Tensor(), true, kMasked).shape() == Shape{2, 1, 8});
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 6, 2, {}, Tensor(), true, kMasked),
                    Catch::Contains("6 filled positions"));
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 0, 2, {}, Tensor(), true, kMasked),
                    Catch::Contains("0 filled positions"));
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 3, 2, {0, 1, 1}, Tensor(), false, kMasked),
                    Catch::Contains("read through 3"));
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 3, 2, {0, 2}, Tensor(), false, kMasked),
                    Catch::Contains("row 2"));
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 3, 2, {}, Tensor::zeros({2, 5}), false, kMasked),
                    Catch::Contains("key_padding_mask") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(cached_attention(q, cache, Tensor::zeros({2, 4, 8}), 3, 2, {}, Tensor(), true, kMasked),
                    Catch::Contains("values"));
}

TEST_CASE("cached_attention() refuses to record a gradient", "[attention][op][errors]") {
  Tensor q = random_input({1, 1, 4}, 70), cache = Tensor::zeros({1, 2, 4});
  CHECK_THROWS_WITH(cached_attention(q, cache, cache, 2, 1, {}, Tensor(), true, kMasked),
                    Catch::Contains("NoGrad"));
}
