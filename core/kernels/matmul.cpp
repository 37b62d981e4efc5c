// See core/kernels/matmul.h.
//
// Four paths behind one contract:
//   - OpenBLAS sgemm for everything with many rows and large matrices (training and the encoder
//     of the larger models);
//   - a small-M path for the few-row products of incremental decoding (M = batch × beam rows of
//     one token each against a weight matrix). sgemm packs all of op(B) into its own layout on
//     every call; with M = 1 that packing costs more than the product itself (the 8000 × 256
//     output layer: 1.07 ms through sgemm, 0.19 ms through sgemv). The small-M path reads every
//     element of B once per call, straight from where it lies, and keeps the few rows of A in
//     cache while it does;
//   - a small-B path for many rows against a small B (a small layer's x·Wᵀ and dY·W in training)
//     and a small-C path for a long k sum into a small C (its weight gradient dYᵀ·X). There
//     sgemm's packing of A, a copy of the whole input per product, is a fifth of its time; these
//     two read A in place and keep the small matrix in cache.
// The three paths of our own share one tile kernel (nn_tile, or dot_tile for x·Wᵀ at few rows)
// and need AVX-512 (F, VL, DQ: every AVX-512 CPU since Skylake-X); without it gemm is sgemm
// alone.
#include "core/kernels/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
// GCC 12 warns inside its own shuffle intrinsics (their _mm512_undefined_ps() "is used
// uninitialized", a known false positive); the warning is about the header, not this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define PAYLESS_SMALL_M_GEMM 1
#else
#define PAYLESS_SMALL_M_GEMM 0
#endif

namespace payless::kernels {
namespace {

// C = beta · C for the degenerate K = 0 product (op(A)·op(B) is all zeros). OpenBLAS rejects a
// leading dimension of 0, so this case never reaches it.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

#if PAYLESS_SMALL_M_GEMM

// ---- C = alpha · A · Bᵀ + beta · C with B stored (N, K): the linear layer's x · Wᵀ.
//
// Every C[i, j] is a dot product of two contiguous K-long rows. A tile takes MR rows of A and NR
// rows of B (MR · NR = 16) and keeps 16 accumulators of 16 lanes: per 16 values of k it loads
// MR + NR vectors and does 16 FMAs. At the end the 16 accumulators are summed across their lanes
// in one shuffle tree, which leaves the 16 dot products in the 16 lanes of one vector.
// Each dot product is computed the same way whatever the tile shape (lane j of the accumulator
// sums k ≡ j mod 16 in order of k, then the same tree), so a row of C has the same bits whether
// it was computed alone or with others, and whichever thread computed it.

constexpr int64_t kLanes = 16;

// Lane r of the result = Σ of the 16 lanes of v[r]. Always inlined, and every loop over the 16
// accumulators here and in dot_tile fully unrolled: otherwise GCC keeps them in a stack array,
// zeroed by a call to memset and spilled for the reduction (a third of a K = 64 tile).
__attribute__((always_inline)) inline __m512 sum_lanes_16(const __m512 v[16]) {
  // Pairs (v[2p], v[2p+1]): per 128-bit block [a0+a2, b0+b2, a1+a3, b1+b3].
  __m512 t[8];
#pragma GCC unroll 16
  for (int p = 0; p < 8; ++p)
    t[p] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]),
                         _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
  // Quads: per 128-bit block the block's sum of v[4q], v[4q+1], v[4q+2], v[4q+3].
  __m512 u[4];
#pragma GCC unroll 16
  for (int q = 0; q < 4; ++q)
    u[q] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * q], t[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t[2 * q], t[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Add the four 128-bit blocks: block q of the result gathers u[q]'s four blocks.
  const __m512 y01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 y23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(y01, y23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The 16 dot products of rows a[0..MR) with rows b[0..NR): lane i·NR + j = a[i] · b[j].
// The k loop runs NR / P times, each time over P rows of b.
//   P = 1, for products of at most 4 rows (a decoding step at batch 1, greedy or beam 4): the
//     rows of b are read one after the other, each from start to end, with a software prefetch
//     256 bytes ahead. There b is a weight matrix that has to come from memory, and the product
//     is only as fast as memory delivers it: one row at a time read 70 MB of decoder weights at
//     37 GB/s, four interleaved rows at 17 GB/s (one core, 2 MiB pages), and the prefetch took
//     the first to 44 GB/s. One forward stream is what the hardware prefetchers follow best.
//   P = 4, for more rows: with the rows of A in cache the tile is bound by loads, and four rows
//     of b at once feed 4·MR FMAs from MR + 4 loads (one row: MR FMAs from MR + 1).
// (16 rows 4 KB apart, K = 1024, all fall in the same L1 set and evict each other's prefetched
// lines: the 1 x 16 tile as 16 interleaved rows ran at half the speed of two rows of A.)
//
// With P = 1 a second prefetch asks for the line 2 KB ahead into L2. A decoding step reads some
// 80 matrices of 1-2 MB one after another, with other work between them, and each starts
// cold: the hardware prefetchers take a while to lock onto the new stream, with few lines in
// flight meanwhile. The far prefetch keeps many in flight from the first row on: the iwslt
// decoder's products read its weights at 33-39 GB/s instead of 29-34 (one thread, greedy,
// 50-token sentences, three interleaved runs each; 1 to 4 KB ahead all did as well, 8 KB was
// slower). A tile of 2 or 4 rows (beam 4 at batch 1) asks 8 KB ahead instead: it spends 2-4
// times as long on each line, and there 2 KB ahead left the stream behind. The 8000 x 256 output
// layer at four rows, weights from memory (timed alone), took 0.34-0.37 ms instead of 0.45
// (4 KB ahead: 0.43-0.44, 16 KB: 0.38-0.43); the beam steps of small and iwslt translation are in
// the eighth round of docs/benchmarks.md.
constexpr int64_t kPrefetchFloats = 64;            // 256 bytes ahead, into L1
constexpr int64_t kFarPrefetchFloats = 512;        // 2 KB ahead, into L2
constexpr int64_t kFarPrefetchFloatsRows = 2048;   // 8 KB ahead, into L2, for 2 or 4 rows of A

template <int MR, int NR, int P>
__m512 dot_tile(const float* const* a, const float* const* b, int64_t K) {
  static_assert(MR * NR == 16 && NR % P == 0, "a tile is 16 dot products, P rows of b at a time");
  __m512 acc[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t full = K - K % kLanes;
  const __mmask16 tail = static_cast<__mmask16>((1u << (K - full)) - 1);
#pragma GCC unroll 16
  for (int pass = 0; pass < NR / P; ++pass) {
    const float* const* bp = b + P * pass;
    // acc[i·NR + P·pass + j] += a[i][k..k+16) · bp[j][k..k+16), lane by lane
    auto fma_step = [&](const __m512* bv, const __m512* av) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j)
          acc[i * NR + P * pass + j] = _mm512_fmadd_ps(av[i], bv[j], acc[i * NR + P * pass + j]);
    };
    for (int64_t k = 0; k < full; k += kLanes) {
      __m512 bv[P], av[MR];
      // The empty asm statements keep the loaded vectors in registers. Left alone, GCC folds a
      // load into every FMA that uses it, and the 4 x 4 tile then waits on 20 loads per 16 FMAs
      // instead of 8: half its speed, measured.
      if (P == 1) {
        _mm_prefetch(reinterpret_cast<const char*>(bp[0] + k + kPrefetchFloats), _MM_HINT_T0);
        constexpr int64_t far = MR > 1 ? kFarPrefetchFloatsRows : kFarPrefetchFloats;
        _mm_prefetch(reinterpret_cast<const char*>(bp[0] + k + far), _MM_HINT_T1);
      }
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) {
        bv[j] = _mm512_loadu_ps(bp[j] + k);
        if (MR > 1) asm("" : "+v"(bv[j]));
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        av[i] = _mm512_loadu_ps(a[i] + k);
        asm("" : "+v"(av[i]));
      }
      fma_step(bv, av);
    }
    if (full < K) {  // the last K mod 16 values; masked lanes load as 0 and add nothing
      __m512 bv[P], av[MR];
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) bv[j] = _mm512_maskz_loadu_ps(tail, bp[j] + full);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) av[i] = _mm512_maskz_loadu_ps(tail, a[i] + full);
      fma_step(bv, av);
    }
  }
  return sum_lanes_16(acc);
}

// The sum of the 16 lanes of x in the order sum_lanes_16 adds each of its vectors: per 128-bit
// block S = (x0 + x2) + (x1 + x3), then (S0 + S1) + (S2 + S3). A row computed alone thus has the
// bits it has inside a tile.
inline float sum_lanes_1(__m512 x) {
  __m512 t = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));   // x0 + x2, x1 + x3
  t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));          // S of the block
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));    // S0 + S1, S2 + S3
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 3, 2)));    // all four
  return _mm512_cvtss_f32(t);
}

// The 16 dot products of one row a with rows b[0..16), lane j = a · b[j]: dot_tile<1, 16, 1>'s
// sums, bit for bit, as one loop over the rows. This is the whole of a decoding step at batch 1,
// where each row of b comes from memory once: read this way the decoder's weights came at the
// read rate of memory (0.95-1.06 x the time of a plain read pass over them), where the 16
// unrolled loops of dot_tile took 1.07-1.45 x as long. The inner loops are the same instructions;
// why the unrolled form falls behind we have not found, the measurement is what decided.
__m512 one_row_dots(const float* a, const float* const* b, int64_t K) {
  const int64_t full = K - K % kLanes;
  const __mmask16 tail = static_cast<__mmask16>((1u << (K - full)) - 1);
  alignas(64) float dots[16];
  for (int j = 0; j < 16; ++j) {
    const float* row = b[j];
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < full; k += kLanes) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k + kPrefetchFloats), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row + k + kFarPrefetchFloats), _MM_HINT_T1);
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(row + k), acc);
    }
    if (full < K)
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + full), _mm512_maskz_loadu_ps(tail, row + full), acc);
    dots[j] = sum_lanes_1(acc);
  }
  return _mm512_load_ps(dots);
}

// out = alpha · dot + beta · c, with c read only when beta != 0 (beta = 0 may meet NaN in C).
template <typename V>
inline V finish(V dot, V c, float alpha, float beta);
template <>
inline __m128 finish(__m128 dot, __m128 c, float alpha, float beta) {
  if (alpha != 1.0f) dot = _mm_mul_ps(_mm_set1_ps(alpha), dot);
  return beta == 0.0f ? dot : beta == 1.0f ? _mm_add_ps(dot, c) : _mm_fmadd_ps(_mm_set1_ps(beta), c, dot);
}
template <>
inline __m256 finish(__m256 dot, __m256 c, float alpha, float beta) {
  if (alpha != 1.0f) dot = _mm256_mul_ps(_mm256_set1_ps(alpha), dot);
  return beta == 0.0f ? dot
                      : beta == 1.0f ? _mm256_add_ps(dot, c) : _mm256_fmadd_ps(_mm256_set1_ps(beta), c, dot);
}
template <>
inline __m512 finish(__m512 dot, __m512 c, float alpha, float beta) {
  if (alpha != 1.0f) dot = _mm512_mul_ps(_mm512_set1_ps(alpha), dot);
  return beta == 0.0f ? dot
                      : beta == 1.0f ? _mm512_add_ps(dot, c) : _mm512_fmadd_ps(_mm512_set1_ps(beta), c, dot);
}

// Writes tile lanes [i·NR, (i+1)·NR) to C row i, columns [0, cols) of the tile (cols <= NR).
template <int MR, int NR>
inline void store_tile(__m512 dots, float* C, int64_t ldc, int64_t cols, float alpha, float beta) {
  if (NR == 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1);
    const __m512 c = beta == 0.0f ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, C);
    _mm512_mask_storeu_ps(C, m, finish(dots, c, alpha, beta));
  } else if (NR == 8) {
    const __mmask8 m = static_cast<__mmask8>((1u << cols) - 1);
    for (int i = 0; i < MR; ++i) {
      const __m256 d = i == 0 ? _mm512_castps512_ps256(dots) : _mm512_extractf32x8_ps(dots, 1);
      float* row = C + i * ldc;
      const __m256 c = beta == 0.0f ? _mm256_setzero_ps() : _mm256_maskz_loadu_ps(m, row);
      _mm256_mask_storeu_ps(row, m, finish(d, c, alpha, beta));
    }
  } else {
    static_assert(NR == 4 || NR == 8 || NR == 16, "tiles are 1 x 16, 2 x 8 or 4 x 4");
    const __mmask8 m = static_cast<__mmask8>((1u << cols) - 1);
    __m128 d[4] = {_mm512_castps512_ps128(dots), _mm512_extractf32x4_ps(dots, 1),
                   _mm512_extractf32x4_ps(dots, 2), _mm512_extractf32x4_ps(dots, 3)};
    for (int i = 0; i < MR; ++i) {
      float* row = C + i * ldc;
      const __m128 c = beta == 0.0f ? _mm_setzero_ps() : _mm_maskz_loadu_ps(m, row);
      _mm_mask_storeu_ps(row, m, finish(d[i], c, alpha, beta));
    }
  }
}

// Asks for rows[first, last) (K values each) to come into L2.
inline void prefetch_rows(const float* const* rows, int64_t first, int64_t last, int64_t K) {
  for (int64_t t = first; t < last; ++t)
    for (int64_t k = 0; k < K; k += kLanes)
      _mm_prefetch(reinterpret_cast<const char*>(rows[t] + k), _MM_HINT_T1);
}

// Columns [j0, j0 + cols) of C (cols <= 16) for all M rows. b[0..16) are the B rows of those
// columns (the ones past `cols` repeat the last real row; computed, never stored). next[0..
// next_rows), if given, are the B rows of the column block to come, asked into L2 meanwhile.
//
// Why the prefetch: with more than kStreamMaxRows rows a block's B rows are first read by the
// tiles of the first four rows, four rows of B at once, and those tiles waited on memory. Timed
// alone at 32 rows, the 8000 x 256 output layer ran at 59-71 GFLOP/s where a 512 x 256 B that
// stays in L2 ran at 100; fetching the next block while this one computes took the output layer
// to 78-83 GFLOP/s with B coming from memory and 82-98 from L3, and a greedy batch-32 step of the
// small models 17-23% faster at one thread (docs/benchmarks.md, eighth round). Each group of four
// rows asks for its share of the next block's rows, so that the requests spread over the block.
template <int P>
void nt_rows(int64_t M, int64_t K, float alpha, const float* A, int64_t lda, const float* const* b,
             float beta, float* C, int64_t ldc, int64_t j0, int64_t cols,
             const float* const* next = nullptr, int64_t next_rows = 0) {
  const float* a[4];
  int64_t i = 0;
  const int64_t groups = M / 4;
  for (; i + 4 <= M; i += 4) {
    if (next) {
      const int64_t g = i / 4;
      prefetch_rows(next, g * next_rows / groups, (g + 1) * next_rows / groups, K);
    }
    for (int r = 0; r < 4; ++r) a[r] = A + (i + r) * lda;
    for (int64_t jj = 0; jj < cols; jj += 4)
      store_tile<4, 4>(dot_tile<4, 4, P>(a, b + jj, K), C + i * ldc + j0 + jj, ldc,
                       std::min<int64_t>(4, cols - jj), alpha, beta);
  }
  if (M - i >= 2) {
    for (int r = 0; r < 2; ++r) a[r] = A + (i + r) * lda;
    for (int64_t jj = 0; jj < cols; jj += 8)
      store_tile<2, 8>(dot_tile<2, 8, P>(a, b + jj, K), C + i * ldc + j0 + jj, ldc,
                       std::min<int64_t>(8, cols - jj), alpha, beta);
    i += 2;
  }
  if (M - i == 1) {
    a[0] = A + i * lda;
    const __m512 dots = P == 1 ? one_row_dots(a[0], b, K) : dot_tile<1, 16, P>(a, b, K);
    store_tile<1, 16>(dots, C + i * ldc + j0, ldc, cols, alpha, beta);
  }
}

// Products of up to this many rows read B one row at a time (P = 1 in dot_tile).
constexpr int64_t kStreamMaxRows = 4;

// With P = 1 the rows stream with prefetches of their own (see dot_tile): `next` is for P = 4.
void nt_column_block(int64_t M, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* const* b, float beta, float* C, int64_t ldc, int64_t j0,
                     int64_t cols, const float* const* next, int64_t next_rows) {
  if (M <= kStreamMaxRows) nt_rows<1>(M, K, alpha, A, lda, b, beta, C, ldc, j0, cols);
  else nt_rows<4>(M, K, alpha, A, lda, b, beta, C, ldc, j0, cols, next, next_rows);
}

// ---- C = alpha · A · B + beta · C with B stored (K, N): row i of C is Σ_k A[i, k] · B[k, :].
//
// A tile is MR rows × NV vectors of 16 columns: per k it loads NV vectors of B row k, broadcasts
// MR values of A, and does MR · NV FMAs. Each C[i, j] sums k in order with one FMA per k, in any
// tile shape.

constexpr int kNnVectors = 4;  // 64 columns per tile

template <int MR, int NV, bool TransA = false>
void nn_tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K, float alpha,
             float beta, float* C, int64_t ldc, __mmask16 last_mask) {
  __m512 acc[MR * NV];  // acc[i·NV + v]: row i, columns [16v, 16v + 16)
#pragma GCC unroll 16
  for (int r = 0; r < MR * NV; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* brow = B + k * ldb;
    __m512 bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last_mask, brow + v * kLanes)
                          : _mm512_loadu_ps(brow + v * kLanes);
      if (MR > 1) asm("" : "+v"(bv[v]));  // in a register, as in dot_tile
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(TransA ? A[k * lda + i] : A[i * lda + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i * NV + v] = _mm512_fmadd_ps(av, bv[v], acc[i * NV + v]);
    }
  }
  // Unrolled, so that acc stays in registers: with a loop here GCC also kept a copy of acc in
  // memory and stored all of it at every k.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last_mask : __mmask16(0xFFFF);
      float* c = C + i * ldc + v * kLanes;
      const __m512 old = beta == 0.0f ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, c);
      _mm512_mask_storeu_ps(c, m, finish(acc[i * NV + v], old, alpha, beta));
    }
}

template <int NV, bool TransA>
void nn_rows(int64_t M, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K,
             float alpha, float beta, float* C, int64_t ldc, __mmask16 last_mask) {
  auto rows_from = [&](int64_t i) { return TransA ? A + i : A + i * lda; };  // op(A) row i
  int64_t i = 0;
  for (; i + 4 <= M; i += 4)
    nn_tile<4, NV, TransA>(rows_from(i), lda, B, ldb, K, alpha, beta, C + i * ldc, ldc, last_mask);
  switch (M - i) {
    case 3: nn_tile<3, NV, TransA>(rows_from(i), lda, B, ldb, K, alpha, beta, C + i * ldc, ldc, last_mask); break;
    case 2: nn_tile<2, NV, TransA>(rows_from(i), lda, B, ldb, K, alpha, beta, C + i * ldc, ldc, last_mask); break;
    case 1: nn_tile<1, NV, TransA>(rows_from(i), lda, B, ldb, K, alpha, beta, C + i * ldc, ldc, last_mask); break;
    default: break;
  }
}

// Columns [j0, j0 + cols) of C (cols <= 64) for all M rows.
template <bool TransA = false>
void nn_column_block(int64_t M, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc, int64_t j0, int64_t cols) {
  const int64_t vectors = (cols + kLanes - 1) / kLanes, tail = cols - (vectors - 1) * kLanes;
  const __mmask16 last = static_cast<__mmask16>((1u << tail) - 1);
  const float* b = B + j0;
  float* c = C + j0;
  switch (vectors) {
    case 4: nn_rows<4, TransA>(M, A, lda, b, ldb, K, alpha, beta, c, ldc, last); break;
    case 3: nn_rows<3, TransA>(M, A, lda, b, ldb, K, alpha, beta, c, ldc, last); break;
    case 2: nn_rows<2, TransA>(M, A, lda, b, ldb, K, alpha, beta, c, ldc, last); break;
    default: nn_rows<1, TransA>(M, A, lda, b, ldb, K, alpha, beta, c, ldc, last); break;
  }
}

// x (rows, cols) with row stride ld, copied transposed into out (cols, rows), contiguous.
const float* transposed(const float* x, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& out) {
  out.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = x[r * ld + c];
  return out.data();
}

// The small-M path. op(A) transposed is first copied into (M, K) rows: M·K values, small next to
// the N·K of B that the product streams.
void gemm_small_m(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  thread_local std::vector<float> packed_a;
  if (trans_a) {
    A = transposed(A, K, M, lda, packed_a);
    lda = K;
  }
  // The columns are split over threads, never the k sum: every C[i, j] comes out with the same
  // bits at any thread count. Small products stay on one thread (see kSmallGemmParallelWork).
  const bool parallel = M * N * K >= kSmallGemmParallelWork && num_threads() > 1;
  const int64_t width = trans_b ? kLanes : kNnVectors * kLanes, blocks = (N + width - 1) / width;
  // fetch_next: the same thread does block blk + 1 next (B's rows for it may be fetched now).
  auto column_block = [&](int64_t blk, bool fetch_next) {
    const int64_t j0 = blk * width, cols = std::min(width, N - j0);
    if (trans_b) {
      const float* b[kLanes];
      for (int64_t t = 0; t < kLanes; ++t) b[t] = B + std::min(j0 + t, N - 1) * ldb;
      const float* next[kLanes];
      const int64_t next_rows = fetch_next && M > kStreamMaxRows ? std::min(width, N - j0 - width) : 0;
      for (int64_t t = 0; t < next_rows; ++t) next[t] = B + (j0 + width + t) * ldb;
      nt_column_block(M, K, alpha, A, lda, b, beta, C, ldc, j0, cols, next_rows > 0 ? next : nullptr,
                      next_rows);
    } else {
      nn_column_block(M, K, alpha, A, lda, B, ldb, beta, C, ldc, j0, cols);
    }
  };
  // Over the threads through parallel_chunks, not an OpenMP region: a decoding step is some 40
  // of these products one after another, and parallel_chunks' helpers stay awake between them
  // where an OpenMP region wakes its threads anew each time (see core/parallel.h). A chunk is
  // whole column blocks, at least kSmallGemmChunkWork multiply-adds, so that handing it out costs
  // little next to running it. Where the blocks fetch the next one's B rows (x·Wᵀ with more than
  // kStreamMaxRows rows), a chunk is also up to 8 blocks (while there are at least 4 chunks per
  // thread), so that the prefetch has a next block on the same thread most of the time.
  if (parallel && blocks > 1) {
    const int64_t block_work = M * width * K;
    int64_t per_chunk = (kSmallGemmChunkWork + block_work - 1) / block_work;
    if (trans_b && M > kStreamMaxRows)
      per_chunk = std::max(per_chunk, std::min<int64_t>(8, blocks / (4 * num_threads())));
    parallel_chunks((blocks + per_chunk - 1) / per_chunk, [&](int64_t c) {
      const int64_t end = std::min(blocks, (c + 1) * per_chunk);
      for (int64_t blk = c * per_chunk; blk < end; ++blk) column_block(blk, blk + 1 < end);
    });
  } else {
    for (int64_t blk = 0; blk < blocks; ++blk) column_block(blk, blk + 1 < blocks);
  }
}

// The small-B path: many rows of A against a B of at most kSmallBMaxElements (a small layer's
// weight). op(B) stored (N, K) is first turned to (K, N) rows, N·K values read once against the
// M·N·K of the product, and every product then runs on nn_tile, which reads A in place and keeps
// B's 64-column panel in cache. The rows are cut into blocks of kSmallBRowBlock, each block all
// its column panels before the next (its rows of A stay in L1 meanwhile), and the blocks are
// what the threads share: whole rows, so every C[i, j] has the same bits at any thread count.
constexpr int64_t kSmallBRowBlock = 128;

void gemm_small_b(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  thread_local std::vector<float> b_rows;  // (K, N): op(B) when B is stored (N, K)
  if (trans_b) {
    B = transposed(B, N, K, ldb, b_rows);
    ldb = N;
  }
  const int64_t width = kNnVectors * kLanes, blocks = (M + kSmallBRowBlock - 1) / kSmallBRowBlock;
  auto row_block = [&](int64_t blk) {
    const int64_t i0 = blk * kSmallBRowBlock, rows = std::min(kSmallBRowBlock, M - i0);
    for (int64_t j0 = 0; j0 < N; j0 += width)
      nn_column_block(rows, K, alpha, A + i0 * lda, lda, B, ldb, beta, C + i0 * ldc, ldc, j0,
                      std::min(width, N - j0));
  };
  parallel_chunks(blocks, row_block);  // in order on this thread when there is one
}

// The small-C path: C (M, N) = alpha · Aᵀ · B + beta · C with A stored (K, M), B stored (K, N),
// K long and C small: a small layer's weight gradient dYᵀ·X, K the rows of a batch. nn_tile reads
// op(A) = Aᵀ in place (a row of C's tile takes its broadcasts from A's columns, which lie side by
// side in A's rows). The k sum runs in slices of kSmallCSlice rows, so that a slice of B is read
// from L1 or L2 by every tile of a block of C's rows; threads take whole blocks of rows.
constexpr int64_t kSmallCSlice = 256;
constexpr int64_t kSmallCRowBlock = 16;

void gemm_small_c(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t width = kNnVectors * kLanes, blocks = (M + kSmallCRowBlock - 1) / kSmallCRowBlock;
  auto row_block = [&](int64_t blk) {
    const int64_t i0 = blk * kSmallCRowBlock, rows = std::min(kSmallCRowBlock, M - i0);
    for (int64_t k0 = 0; k0 < K; k0 += kSmallCSlice) {
      const int64_t slice = std::min(kSmallCSlice, K - k0);
      // The first slice applies beta; the others add to what the earlier ones left.
      const float slice_beta = k0 == 0 ? beta : 1.0f;
      for (int64_t j0 = 0; j0 < N; j0 += width)
        nn_column_block<true>(rows, slice, alpha, A + k0 * lda + i0, lda, B + k0 * ldb, ldb,
                              slice_beta, C + i0 * ldc, ldc, j0, std::min(width, N - j0));
    }
  };
  parallel_chunks(blocks, row_block);  // in order on this thread when there is one
}

#endif  // PAYLESS_SMALL_M_GEMM

}  // namespace

bool gemm_uses_small_m_path(bool trans_a, int64_t M, int64_t N, int64_t K) {
  if (!PAYLESS_SMALL_M_GEMM) return false;
  if (trans_a || M > kSmallGemmMaxRows) return false;
  return M * N * K > kSmallGemmMinWork || (M == 1 && N * K >= kSmallGemmOneRowMinWork);
}

bool gemm_uses_small_b_path(bool trans_a, int64_t M, int64_t N, int64_t K) {
  if (!PAYLESS_SMALL_M_GEMM) return false;
  return !trans_a && M > kSmallGemmMaxRows && N <= kSmallBMaxColumns && N * K <= kSmallBMaxElements;
}

bool gemm_uses_small_c_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  if (!PAYLESS_SMALL_M_GEMM) return false;
  return trans_a && !trans_b && K > kSmallGemmMaxRows && M <= kSmallCMaxRows && M * N <= kSmallCMaxElements;
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // OpenBLAS has its own threads; calling it from an OpenMP team would run (threads)² of them.
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#if PAYLESS_SMALL_M_GEMM
  if (gemm_uses_small_m_path(trans_a, M, N, K))
    return gemm_small_m(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (gemm_uses_small_b_path(trans_a, M, N, K))
    return gemm_small_b(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (gemm_uses_small_c_path(trans_a, trans_b, M, N, K))
    return gemm_small_c(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
  // cblas takes int sizes; a matrix past 2^31 elements per row stride would overflow silently.
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) fail("gemm: size ", v, " does not fit the BLAS interface (int)");
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) fail("gemm: size ", v, " does not fit the BLAS interface (int)");
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void gemm_small_m_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc) {
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#if PAYLESS_SMALL_M_GEMM
  gemm_small_m(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  gemm_blas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm_small_b_path(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= K && ldb >= (trans_b ? K : N) && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#if PAYLESS_SMALL_M_GEMM
  gemm_small_b(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  gemm_blas(false, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm_small_c_path(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  PAYLESS_ASSERT(!omp_in_parallel());
  PAYLESS_ASSERT(lda >= M && ldb >= N && ldc >= N);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
#if PAYLESS_SMALL_M_GEMM
  gemm_small_c(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  gemm_blas(true, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
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
