// Tests for the decoding-step attention kernel, core/kernels/attention.h (tag [attention][kernel]):
// the fast kernel against its double-precision reference loop over the layouts it is given
// (cache capacity beyond the filled length, a row map, padding masks, causal queries), with 1
// and 2 threads and the same bits at both. That the layer's step equals the whole-sequence
// attention is tested in test_attention.cpp and test_incremental_decoding.cpp.
#include <catch2/catch.hpp>

#include <vector>

#include "core/kernels/attention.h"
#include "tests/support/compare.h"

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
