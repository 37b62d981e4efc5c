// General matrix multiply on raw row-major buffers: OpenBLAS sgemm, kernels of our own for the
// few-row products of incremental decoding and for a small model's products in training, and a
// plain reference loop.
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
// Products with few rows take the small-M path, small-B and small-C products (limits below) their
// paths, the others sgemm; all give the same bits run after run, and the paths of our own also at
// any thread count.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Where gemm takes the small-M path: A stored untransposed, M <= kSmallGemmMaxRows and
// M·N·K > kSmallGemmMinWork, or a single row (M = 1) against at least kSmallGemmOneRowMinWork
// weights. A transposed A is a training weight gradient (dYᵀ·X, K = the batch's
// rows), where sgemm was 2.6-6.6x faster at 64-128 rows and K = 4096 (the strided copy of A and
// a k loop that long do not suit the path); decoding never transposes A.
// Both from timings of both paths on Zen 4 at the decoding shapes (docs/benchmarks.md, "Small-M
// products", `payless bench ops`): the small-M path is 5-11% faster at 128 rows at every decoding
// shape of small and iwslt (beam 4 at batch 32), from as fast (1024 x 512 at one row) to 5.5x
// faster (10000 x 512 at one row) at 1-32 rows; larger M is training, where sgemm runs at 84-90%
// of the FMA peak. At or below 2^18 multiply-adds OpenBLAS runs its own small-matrix kernels,
// without packing, as fast (and faster within a decoding step, measured), except for one row:
// there the small-M path reads B as one forward stream (see dot_tile), and taking the 512 x 512
// projections of a one-token iwslt step from OpenBLAS's small kernels cut the Transformer's
// greedy step by 12-25% (interleaved A/B, `bench decode --batches 1`).
constexpr int64_t kSmallGemmMaxRows = 128;
constexpr int64_t kSmallGemmMinWork = int64_t{1} << 18;
constexpr int64_t kSmallGemmOneRowMinWork = int64_t{1} << 14;
// Multiply-adds from which the small-M path splits the columns over the threads (through
// parallel_chunks, whose helpers stay awake from one product to the next of a decoding step).
// 2^17 multiply-adds (the 512 x 256 products of the small config at one row) read 0.5 MB of
// weights, about 15 µs on one core; the helper's share has to be worth a chunk's hand-over.
constexpr int64_t kSmallGemmParallelWork = int64_t{1} << 17;
// The least work of one chunk of a split product: 32 Ki multiply-adds, 128 KB of weights at one
// row, against about 0.1 µs to hand it out (a compare-and-swap on a line both cores write).
constexpr int64_t kSmallGemmChunkWork = int64_t{1} << 15;

// Products with more rows against a small op(B), A untransposed, C at most kSmallBMaxColumns
// wide: a small model's layers in training (x·Wᵀ and dY·W with W of d = 64, FFN 128, or dY·W of
// a 1000-word output layer), where sgemm spends a fifth of its time packing A and B into its own
// layouts. The small-B path reads A in place: 1.08-1.47x sgemm's rate at such shapes (4096 rows,
// one thread; docs/benchmarks.md, "Small-B and small-C products"). Past the limits sgemm is as
// fast or faster: about even at 256 x 256, 0.77-0.90x for C 512 or 1024 wide (each 64-column
// panel reads A's rows again), 0.73x and below once B outgrows the L2.
constexpr int64_t kSmallBMaxColumns = 128;
constexpr int64_t kSmallBMaxElements = int64_t{1} << 16;

// Weight gradients of small layers, dYᵀ·X: A transposed, more than kSmallGemmMaxRows rows in the
// k sum, C at most kSmallCMaxRows × (kSmallCMaxElements in all). The small-C path was 1.12-1.66x
// sgemm's rate at such shapes (4096 rows, one thread), and behind it with C 1000 x 64 (the
// columns of a 1000-wide dY, read down 4 KB rows, miss the cache one row at a time).
constexpr int64_t kSmallCMaxRows = 256;
constexpr int64_t kSmallCMaxElements = int64_t{1} << 14;

// True when gemm takes the small-M path for this product (never on CPUs without AVX-512).
bool gemm_uses_small_m_path(bool trans_a, int64_t M, int64_t N, int64_t K);
// True when gemm takes the small-B path (never on CPUs without AVX-512).
bool gemm_uses_small_b_path(bool trans_a, int64_t M, int64_t N, int64_t K);
// True when gemm takes the small-C path (never on CPUs without AVX-512).
bool gemm_uses_small_c_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K);

// Each path alone, with gemm's contract, for tests and `payless bench ops`. gemm_small_m_path is
// sgemm on CPUs without AVX-512.
void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc);
void gemm_small_m_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc);

// The small-B path alone (A untransposed), sgemm on CPUs without AVX-512.
void gemm_small_b_path(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The small-C path alone (A transposed, B not), sgemm on CPUs without AVX-512.
void gemm_small_c_path(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same contract as gemm, as three plain loops accumulating in double. For tests only.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

}  // namespace payless::kernels
