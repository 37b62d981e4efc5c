// See core/kernels/matmul.h.
#include "core/kernels/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <climits>

#include "core/error.h"

namespace payless::kernels {
namespace {

// C = beta · C for the degenerate K = 0 product (op(A)·op(B) is all zeros). OpenBLAS rejects a
// leading dimension of 0, so this case never reaches it.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // OpenBLAS has its own threads; calling it from an OpenMP team would run (threads)² of them.
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  // cblas takes int sizes; a matrix past 2^31 elements per row stride would overflow silently.
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) fail("gemm: size ", v, " does not fit the BLAS interface (int)");
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        double a = trans_a ? A[k * lda + i] : A[i * lda + k];  // op(A)[i, k]
        double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];  // op(B)[k, j]
        acc += a * b;
      }
      double previous = beta == 0.0f ? 0.0 : double(beta) * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(double(alpha) * acc + previous);
    }
}

}  // namespace payless::kernels
