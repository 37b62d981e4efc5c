// General matrix multiply on raw row-major buffers: the OpenBLAS call and a plain reference loop.
//
// This is the one place in payless that calls sgemm (core/ops/matmul.cpp builds matmul, linear
// and their backward passes from it). It is not a Tensor op: no shapes, no autograd, just
// pointers, sizes and leading dimensions, so tests can compare gemm with gemm_reference at any
// size without building tensors.
#pragma once

#include <cstdint>

namespace payless::kernels {

// C (M, N) = alpha · op(A) · op(B) + beta · C, every matrix row-major.
//   op(A) is (M, K): A is stored (M, K) with row length lda >= K, or, when trans_a, stored (K, M)
//   with lda >= M and read transposed. Likewise op(B) is (K, N): B stored (K, N) with ldb >= N,
//   or (N, K) with ldb >= K when trans_b. C is stored (M, N) with ldc >= N.
// beta = 0 overwrites C without reading it (so C may hold garbage, even NaN); beta = 1 accumulates,
// which is how every backward pass adds into a gradient buffer.
// Must not be called from inside an OpenMP parallel region: OpenBLAS runs its own thread pool.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same contract as gemm, as three plain loops accumulating in double. For tests only.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

}  // namespace payless::kernels
