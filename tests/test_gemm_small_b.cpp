// The small-B and small-C paths of kernels::gemm (core/kernels/matmul.cpp): a small layer's
// products in training, many rows against a small weight (x·Wᵀ, dY·W) and its weight gradient
// (dYᵀ·X, a long k sum into a small C). Against gemm_reference at odd sizes (the tails of the
// 4-row tiles, the 64-column panels, the 128-row blocks and the 256-row slices of the k sum),
// wide leading dimensions, both layouts of B, beta = 0 over NaN, beta = 1 and a general alpha and
// beta, at 1, 2 and 3 threads; where gemm takes each path; and the same bits at 1 and 2 threads.
#include <catch2/catch.hpp>

#include <limits>

#include "core/kernels/matmul.h"
#include "tests/support/compare.h"
#include "tests/support/gemm_cases.h"

using namespace payless;
using namespace payless::testing;

namespace {

using Case = GemmCase;

// Each path with gemm's signature (the path functions take only the layouts they handle).
void small_b(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  REQUIRE_FALSE(trans_a);
  kernels::gemm_small_b_path(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void small_c(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  REQUIRE((trans_a && !trans_b));
  kernels::gemm_small_c_path(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// k sums of up to 600 terms in float against the reference's double: 1e-4 absolute leaves room
// for their rounding, none for a wrong index.
constexpr double kAbsoluteTolerance = 1e-4;

// beta = 0 over NaN (C must not be read), then accumulating with beta = 1 and a general alpha, beta.
void check_against_reference(GemmFn fn, const Case& c, uint64_t seed) {
  const int64_t size = c.M * c.ldc();
  const std::vector<float> nan_c(size, std::numeric_limits<float>::quiet_NaN());
  CHECK(gemm_mismatches(fn, c, 1.0f, 0.0f, nan_c, seed, kAbsoluteTolerance) == 0);
  const std::vector<float> c0 = random_values(size, seed + 7);
  CHECK(gemm_mismatches(fn, c, 0.5f, 1.0f, c0, seed, kAbsoluteTolerance) == 0);
  CHECK(gemm_mismatches(fn, c, -1.5f, 0.25f, c0, seed, kAbsoluteTolerance) == 0);
}

}  // namespace

TEST_CASE("small-B gemm equals the reference loop at odd sizes, strides and both layouts of B",
          "[kernels][matmul]") {
  for (int threads : {1, 2, 3}) {
    ThreadScope scope(threads);
    for (int64_t M : {1, 5, 129, 130, 257, 301})
      for (int64_t N : {1, 7, 16, 33, 64, 65, 129, 200})
        for (int64_t K : {1, 7, 33, 64, 129})
          for (bool trans_b : {false, true}) {
            const Case c{false, trans_b, M, N, K};
            INFO("threads " << threads << " M " << M << " N " << N << " K " << K << " trans_b " << trans_b);
            check_against_reference(small_b, c, 1000 * M + 10 * N + K + trans_b);
          }
  }
}

TEST_CASE("small-C gemm equals the reference loop at odd sizes, strides and slice tails",
          "[kernels][matmul]") {
  for (int threads : {1, 2, 3}) {
    ThreadScope scope(threads);
    for (int64_t M : {1, 5, 16, 17, 40})
      for (int64_t N : {1, 7, 16, 33, 64, 65, 129})
        for (int64_t K : {1, 129, 255, 256, 257, 600}) {
          const Case c{true, false, M, N, K};
          INFO("threads " << threads << " M " << M << " N " << N << " K " << K);
          check_against_reference(small_c, c, 1000 * M + 10 * N + K);
        }
  }
}

TEST_CASE("gemm takes the small-B and small-C paths inside their limits and stays exact",
          "[kernels][matmul]") {
  const int64_t rows = kernels::kSmallGemmMaxRows;
  // Small-B: untransposed A with more rows than the small-M path takes, C up to
  // kSmallBMaxColumns wide, B up to kSmallBMaxElements.
  const int64_t columns = kernels::kSmallBMaxColumns, b_size = kernels::kSmallBMaxElements;
  CHECK(kernels::gemm_uses_small_b_path(false, rows + 1, columns, b_size / columns));
  CHECK_FALSE(kernels::gemm_uses_small_b_path(false, rows, columns, b_size / columns));
  CHECK_FALSE(kernels::gemm_uses_small_b_path(false, rows + 1, columns + 1, 64));
  CHECK_FALSE(kernels::gemm_uses_small_b_path(false, rows + 1, columns, b_size / columns + 1));
  CHECK_FALSE(kernels::gemm_uses_small_b_path(true, rows + 1, 64, 64));
  // Small-C: A transposed, B not, a long k sum, C within both limits.
  const int64_t c_rows = kernels::kSmallCMaxRows, c_size = kernels::kSmallCMaxElements;
  CHECK(kernels::gemm_uses_small_c_path(true, false, 64, 64, rows + 1));
  CHECK_FALSE(kernels::gemm_uses_small_c_path(true, false, 64, 64, rows));
  CHECK_FALSE(kernels::gemm_uses_small_c_path(true, true, 64, 64, rows + 1));
  CHECK_FALSE(kernels::gemm_uses_small_c_path(false, false, 64, 64, rows + 1));
  CHECK(kernels::gemm_uses_small_c_path(true, false, c_rows, c_size / c_rows, rows + 1));
  CHECK_FALSE(kernels::gemm_uses_small_c_path(true, false, c_rows + 1, 1, rows + 1));
  CHECK_FALSE(kernels::gemm_uses_small_c_path(true, false, 64, c_size / 64 + 1, rows + 1));
  // Through the public gemm, on both sides of each limit.
  const Case cases[] = {{false, true, rows + 1, 64, 64},   {false, false, rows + 1, 64, 64},
                        {false, true, rows + 1, 129, 64},  {false, false, 300, 64, 1000},
                        {true, false, 64, 64, rows + 1},   {true, false, 64, 64, rows},
                        {true, false, 257, 3, 300},        {true, true, 64, 64, 300}};
  for (const Case& c : cases) {
    INFO("M " << c.M << " N " << c.N << " K " << c.K << " trans_a " << c.trans_a << " trans_b "
              << c.trans_b << " small-B " << kernels::gemm_uses_small_b_path(c.trans_a, c.M, c.N, c.K)
              << " small-C " << kernels::gemm_uses_small_c_path(c.trans_a, c.trans_b, c.M, c.N, c.K));
    check_against_reference(kernels::gemm, c, 11);
  }
}

TEST_CASE("small-B and small-C gemm give the same bits at 1 and 2 threads", "[kernels][matmul]") {
  for (bool trans_b : {false, true}) {
    const Case c{false, trans_b, 1000, 130, 64};  // 8 row blocks, a 2-column last panel
    const std::vector<float> A = c.a(1), B = c.b(2);
    INFO("small-B, trans_b " << trans_b);
    check_same_bits_at_1_and_2_threads([&] {
      std::vector<float> out(c.M * c.ldc(), 0.0f);
      kernels::gemm_small_b_path(trans_b, c.M, c.N, c.K, 1.0f, A.data(), c.lda(), B.data(),
                                 c.ldb(), 0.0f, out.data(), c.ldc());
      return out;
    });
  }
  const Case c{true, false, 100, 70, 1000};  // 7 row blocks of C, 4 slices of the k sum
  const std::vector<float> A = c.a(3), B = c.b(4);
  INFO("small-C");
  check_same_bits_at_1_and_2_threads([&] {
    std::vector<float> out = random_values(c.M * c.ldc(), 5);
    kernels::gemm_small_c_path(c.M, c.N, c.K, 0.5f, A.data(), c.lda(), B.data(), c.ldb(), 1.0f,
                               out.data(), c.ldc());
    return out;
  });
}
