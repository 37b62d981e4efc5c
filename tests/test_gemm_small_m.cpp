// The small-M path of kernels::gemm (core/kernels/matmul.cpp): the products of incremental
// decoding, a few rows of A against a whole weight matrix. Against gemm_reference at odd sizes
// (every tail of the 16-lane vectors and of the 1 x 16, 2 x 8, 4 x 4 and 64-column tiles), wide
// leading dimensions, every transpose, beta = 0 over NaN, beta = 1 and a general alpha and beta;
// then its determinism: the same bits at 1 and 2 threads, and a row's bits independent of the
// rows computed with it. The sgemm path is tested in test_matmul.cpp.
#include <catch2/catch.hpp>

#include <limits>

#include "core/kernels/matmul.h"
#include "tests/support/compare.h"
#include "tests/support/gemm_cases.h"

using namespace payless;
using namespace payless::testing;

using Case = GemmCase;

TEST_CASE("small-M gemm equals the reference loop at odd sizes, strides and transposes",
          "[kernels][matmul]") {
  const int64_t sizes[] = {1, 7, 13, 33, 129, 257};
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (int64_t M = 1; M <= 9; ++M)
      for (int64_t N : sizes)
        for (int64_t K : sizes)
          for (int combo = 0; combo < 4; ++combo) {
            const Case c{bool(combo & 1), bool(combo & 2), M, N, K};
            INFO("threads " << threads << " M " << M << " N " << N << " K " << K << " trans_a "
                            << c.trans_a << " trans_b " << c.trans_b);
            const uint64_t seed = 100 * M + 10 * combo + N + K;
            const int64_t rows = M * c.ldc();
            // beta = 0 must not read C: a NaN already there must not reach the result.
            const std::vector<float> nan_c(rows, std::numeric_limits<float>::quiet_NaN());
            CHECK(gemm_mismatches(kernels::gemm_small_m_path, c, 1.0f, 0.0f, nan_c, seed) == 0);
            // beta = 1 accumulates (the backward case); alpha scales only the product.
            const std::vector<float> c0 = random_values(rows, seed + 7);
            CHECK(gemm_mismatches(kernels::gemm_small_m_path, c, 0.5f, 1.0f, c0, seed) == 0);
            CHECK(gemm_mismatches(kernels::gemm_small_m_path, c, -1.5f, 0.25f, c0, seed) == 0);
          }
  }
}

TEST_CASE("gemm takes the small-M path inside its limits and stays exact on both sides",
          "[kernels][matmul]") {
  // Rows around the row limit, with enough work to leave sgemm's own small-matrix range; and
  // few rows with too little work. Through the public gemm, which picks the path.
  const int64_t limit = kernels::kSmallGemmMaxRows;
  const int64_t cases[][3] = {{limit - 1, 517, 129}, {limit, 517, 129}, {limit + 1, 517, 129},
                              {1, 2100, 129}, {3, 20, 17}, {1, 131, 129}, {1, 7, 33}};
  for (bool trans_b : {false, true})
    for (const auto& s : cases) {
      const Case c{false, trans_b, s[0], s[1], s[2]};
      INFO("M " << c.M << " N " << c.N << " K " << c.K << " trans_b " << trans_b << " small-M path "
                << kernels::gemm_uses_small_m_path(false, c.M, c.N, c.K));
      const std::vector<float> nan_c(c.M * c.ldc(), std::numeric_limits<float>::quiet_NaN());
      CHECK(gemm_mismatches(kernels::gemm, c, 1.0f, 0.0f, nan_c, 5) == 0);
      CHECK(gemm_mismatches(kernels::gemm, c, 1.0f, 1.0f, random_values(c.M * c.ldc(), 6), 5) == 0);
    }
  // One row takes the path from kSmallGemmOneRowMinWork weights on, two rows only above
  // kSmallGemmMinWork multiply-adds.
  const int64_t one_row = kernels::kSmallGemmOneRowMinWork;
  CHECK(kernels::gemm_uses_small_m_path(false, 1, one_row / 64, 64));
  CHECK_FALSE(kernels::gemm_uses_small_m_path(false, 1, one_row / 64 - 1, 64));
  CHECK_FALSE(kernels::gemm_uses_small_m_path(false, 2, one_row / 64, 64));
  // A transposed A (a weight gradient in training) always goes to sgemm, whatever its size.
  for (const auto& s : cases) CHECK_FALSE(kernels::gemm_uses_small_m_path(true, s[0], s[1], s[2]));
}

TEST_CASE("small-M gemm gives the same bits at 1 and 2 threads and for a row alone",
          "[kernels][matmul]") {
  // Large enough to be split over two threads (M·N·K above kSmallGemmParallelWork).
  for (int combo = 0; combo < 4; ++combo) {
    const Case c{bool(combo & 1), bool(combo & 2), 5, 1031, 263};
    REQUIRE(c.M * c.N * c.K >= kernels::kSmallGemmParallelWork);
    INFO("trans_a " << c.trans_a << " trans_b " << c.trans_b);
    const std::vector<float> A = c.a(1), B = c.b(2);
    check_same_bits_at_1_and_2_threads([&] {
      std::vector<float> out(c.M * c.ldc(), 0.0f);
      kernels::gemm_small_m_path(c.trans_a, c.trans_b, c.M, c.N, c.K, 1.0f, A.data(), c.lda(),
                                 B.data(), c.ldb(), 0.0f, out.data(), c.ldc());
      return out;
    });
  }
  // x · Wᵀ (the decoding case): row i of a 7-row product has the bits of row i computed alone,
  // so a hypothesis decodes to the same numbers whatever batch it shares.
  const int64_t M = 7, N = 300, K = 129;
  const std::vector<float> A = random_values(M * K, 3), B = random_values(N * K, 4);
  std::vector<float> all(M * N);
  kernels::gemm_small_m_path(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, all.data(), N);
  for (int64_t i = 0; i < M; ++i) {
    std::vector<float> alone(N);
    kernels::gemm_small_m_path(false, true, 1, N, K, 1.0f, A.data() + i * K, K, B.data(), K, 0.0f,
                               alone.data(), N);
    INFO("row " << i);
    CHECK(same_bits(alone, std::vector<float>(all.begin() + i * N, all.begin() + (i + 1) * N)));
  }
}
