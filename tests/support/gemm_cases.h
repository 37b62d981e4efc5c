// One gemm product for the kernel tests of core/kernels/matmul.cpp (test_gemm_small_m.cpp,
// test_gemm_small_b.cpp): sizes, transposes and leading dimensions wider than the matrices (so
// that a mix-up of the two shows), random operands, and the count of elements where a path
// differs from gemm_reference.
#pragma once

#include <cmath>
#include <vector>

#include "core/kernels/matmul.h"
#include "tests/support/compare.h"

namespace payless::testing {

struct GemmCase {
  bool trans_a, trans_b;
  int64_t M, N, K;
  int64_t lda() const { return (trans_a ? M : K) + 3; }
  int64_t ldb() const { return (trans_b ? K : N) + 5; }
  int64_t ldc() const { return N + 2; }
  std::vector<float> a(uint64_t seed) const { return random_values((trans_a ? K : M) * lda(), seed); }
  std::vector<float> b(uint64_t seed) const { return random_values((trans_b ? N : K) * ldb(), seed); }
};

// gemm's signature, which every path is called through.
using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                        const float*, int64_t, float, float*, int64_t);

// Runs `fn` and the reference on one case with the given alpha, beta and starting C; returns the
// number of elements off by more than atol + 1e-5 relative (the padding between rows of C is
// compared too: it must stay as it was). With beta = 0 the reference leaves NaN padding as NaN,
// and so must the path: NaN against NaN counts as equal.
inline int64_t gemm_mismatches(GemmFn fn, const GemmCase& c, float alpha, float beta,
                               const std::vector<float>& c0, uint64_t seed, double atol = 1e-5) {
  const std::vector<float> A = c.a(seed), B = c.b(seed + 1);
  std::vector<float> got = c0, want = c0;
  fn(c.trans_a, c.trans_b, c.M, c.N, c.K, alpha, A.data(), c.lda(), B.data(), c.ldb(), beta,
     got.data(), c.ldc());
  kernels::gemm_reference(c.trans_a, c.trans_b, c.M, c.N, c.K, alpha, A.data(), c.lda(), B.data(),
                          c.ldb(), beta, want.data(), c.ldc());
  for (size_t i = 0; i < got.size(); ++i)
    if (std::isnan(got[i]) && std::isnan(want[i])) got[i] = want[i] = 0.0f;
  return count_mismatches(got, want, atol, 1e-5);
}

}  // namespace payless::testing
