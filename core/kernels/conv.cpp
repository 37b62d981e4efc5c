// LightweightConv and DynamicConv kernels on raw pointers; see conv.h for the layout, the math and
// the accumulate contract, and spec-lightconv.md §3 for the derivation of the backward formulas.
//
// Two kinds of inner loop over the R contiguous channels of one head do all the work:
//   tap sums:  out[t, 0..R) (+)= Σ_k w(t,k) · in[row(t,k), 0..R)   (forward, ∂x, decoding step)
//   dots:      Σ_r gy[t, r] · x[t+k-P, r]                          (∂a, ∂w: one number per tap)
// Both run as register tiles (several rows, taps or channels at once, see "Register tiles"):
// whole tiles inside the sequence, one-row tiles near its edges where some taps fall into the
// zero padding, and plain loops for the leftover channels of heads that are not a multiple of 16
// or 32 wide. The outer loop walks blocks of (b, t) rows; they are independent, so OpenMP splits
// them statically, and only when the work is big enough to pay for waking the threads.
#include "core/kernels/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace payless::kernels {
namespace {

// ---- Vectors -----------------------------------------------------------------------------------
// Vec is 16 floats handled as one value (a GCC/Clang vector extension, not an intrinsic): + and *
// act lane by lane and `scalar * Vec` broadcasts the scalar. It is one AVX-512 register here and
// the compiler splits it into two AVX2 or four SSE registers elsewhere, so the code stays portable.
typedef float Vec __attribute__((vector_size(64)));
constexpr int64_t kVec = 16;  // floats per Vec

inline Vec load_vec(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}
inline void store_vec(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }

// Σ of the 16 lanes as a fixed tree: add the upper half onto the lower half, repeat (the same order
// whatever the vector width). Taken by value and split with shuffles, not through memory: a
// memcpy of an accumulator's address made GCC keep all of dots_tile's accumulators on the stack.
inline float sum_lanes(Vec v) {
  typedef float Vec8 __attribute__((vector_size(32)));
  typedef float Vec4 __attribute__((vector_size(16)));
  const Vec8 s8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Vec4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) +
                  __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// ---- Plain loops (leftover channels, short tap ranges) -----------------------------------------

// out[r] (+)= Σ_{i=0}^{taps-1} w[i·w_step] · rows[i·C + r],   r in [0, R).
inline void taps_sum(float* out, bool accumulate, const float* rows, int64_t C, const float* w,
                     int64_t w_step, int64_t taps, int64_t R) {
  if (!accumulate)
    for (int64_t r = 0; r < R; ++r) out[r] = 0.0f;
  for (int64_t k = 0; k < taps; ++k) {
    const float wk = w[k * w_step];  // scalar broadcast: one tap weight for the whole head
    const float* row = rows + k * C;
    for (int64_t r = 0; r < R; ++r) out[r] += wk * row[r];
  }
}

// Σ_r u[r]·v[r] over r in [0, R): two vector partial sums (so consecutive multiply-adds do not
// wait for each other), then the leftover channels.
inline float dot(const float* u, const float* v, int64_t R) {
  Vec acc0 = {}, acc1 = {};
  int64_t r = 0;
  for (; r + 2 * kVec <= R; r += 2 * kVec) {
    acc0 += load_vec(u + r) * load_vec(v + r);
    acc1 += load_vec(u + r + kVec) * load_vec(v + r + kVec);
  }
  if (r + kVec <= R) acc0 += load_vec(u + r) * load_vec(v + r), r += kVec;
  float sum = sum_lanes(acc0 + acc1);
  for (; r < R; ++r) sum += u[r] * v[r];
  return sum;
}

// ---- Register tiles ----------------------------------------------------------------------------
// A one-row loop loads one input vector per multiply-add. With C = 512 the rows of a window sit
// 2 KB apart, which maps them onto the same few sets of the L1 cache, so those loads come from
// L2, and the one-row forward ran at a quarter of the FMA peak. The tiles keep a block of outputs
// AND a sliding window of input rows in registers, so each vector loaded feeds several
// multiply-adds, and nothing is stored until the end.

// Tap sums of Rows output rows × 32 channels:
//   out[j·C + i] (+)= Σ_{k<taps} w[j·wj + k·wk] · in[(j+k)·C + i]     j < Rows, i < kTileChannels
// Output row j meets input rows j .. j+taps-1, so at tap k the tile reads the consecutive rows
// k .. k+Rows-1; going to tap k+1 drops the first of them and loads one new row. The weight
// steps (wj per output row, wk per tap) cover both convolutions and the flipped taps of ∂x.
// Rows = kTileRows inside the sequence; Rows = 1 near its edges, where taps are cut off.
constexpr int64_t kTileRows = 4;
constexpr int64_t kTileVecs = 2;
constexpr int64_t kTileChannels = kTileVecs * kVec;  // 32

template <int64_t Rows>
inline void taps_tile(float* out, int64_t C, bool accumulate, const float* in, const float* w,
                      int64_t wj, int64_t wk, int64_t taps) {
  Vec acc[Rows][kTileVecs];     // the outputs: 8 registers for Rows = 4
  Vec window[Rows][kTileVecs];  // input rows k .. k+Rows-1: 8 more
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t v = 0; v < kTileVecs; ++v) {
      acc[j][v] = accumulate ? load_vec(out + j * C + v * kVec) : Vec{};
      window[j][v] = load_vec(in + j * C + v * kVec);
    }
  for (int64_t k = 0; k < taps; ++k) {
    for (int64_t j = 0; j < Rows; ++j) {
      const float wt = w[j * wj + k * wk];
      for (int64_t v = 0; v < kTileVecs; ++v) acc[j][v] += wt * window[j][v];
    }
    if (k + 1 == taps) break;
    for (int64_t j = 0; j + 1 < Rows; ++j)
      for (int64_t v = 0; v < kTileVecs; ++v) window[j][v] = window[j + 1][v];
    for (int64_t v = 0; v < kTileVecs; ++v)
      window[Rows - 1][v] = load_vec(in + (k + Rows) * C + v * kVec);
  }
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t v = 0; v < kTileVecs; ++v) store_vec(out + j * C + v * kVec, acc[j][v]);
}

// Tap sums of Rows output rows over all R channels of one head: 32-channel tiles, then the
// leftover channels one row at a time. Same formula and arguments as taps_tile.
template <int64_t Rows>
inline void tap_sums(float* out, int64_t C, int64_t R, bool accumulate, const float* in,
                     const float* w, int64_t wj, int64_t wk, int64_t taps) {
  int64_t r = 0;
  for (; r + kTileChannels <= R; r += kTileChannels)
    taps_tile<Rows>(out + r, C, accumulate, in + r, w, wj, wk, taps);
  for (int64_t j = 0; j < Rows && r < R; ++j)
    taps_sum(out + j * C + r, accumulate, in + j * C + r, C, w + j * wj, wk, taps, R - r);
}

// Dot products of Rows gradient rows with kDotTaps shifted input rows, over all R channels:
//   out[j][i] = Σ_{r<R} g[j·C + r] · in[(j+i)·C + r]        j < Rows, i < kDotTaps
// Per 16 channels: the gradient rows stay in registers and the input rows slide as in taps_tile,
// so Rows + (Rows + kDotTaps - 1) loads feed Rows·kDotTaps multiply-adds into separate partial
// sums; each partial sum is reduced across its lanes once, at the end.
constexpr int64_t kDotRows = 2;
constexpr int64_t kDotTaps = 8;

template <int64_t Rows>
inline void dots_tile(const float* g, const float* in, int64_t C, int64_t R,
                      float out[][kDotTaps]) {
  Vec acc[Rows][kDotTaps] = {};  // 16 registers for Rows = 2
  int64_t r = 0;
  for (; r + kVec <= R; r += kVec) {
    Vec gv[Rows], window[Rows];
    for (int64_t j = 0; j < Rows; ++j) {
      gv[j] = load_vec(g + j * C + r);
      window[j] = load_vec(in + j * C + r);
    }
    for (int64_t i = 0; i < kDotTaps; ++i) {
      for (int64_t j = 0; j < Rows; ++j) acc[j][i] += gv[j] * window[j];
      if (i + 1 == kDotTaps) break;
      for (int64_t j = 0; j + 1 < Rows; ++j) window[j] = window[j + 1];
      window[Rows - 1] = load_vec(in + (i + Rows) * C + r);
    }
  }
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t i = 0; i < kDotTaps; ++i) {
      float sum = sum_lanes(acc[j][i]);
      for (int64_t rr = r; rr < R; ++rr) sum += g[j * C + rr] * in[(j + i) * C + rr];
      out[j][i] = sum;
    }
}

// ---- Rows of one sequence -----------------------------------------------------------------------

void check_sizes(int64_t B, int64_t T, int64_t C, int64_t H, int64_t K, int64_t P) {
  // The op layer validates user shapes; reaching here with bad sizes is a bug in payless.
  PAYLESS_ASSERT(B >= 0 && T >= 0 && C >= 0);
  PAYLESS_ASSERT(H >= 1 && C % H == 0);
  PAYLESS_ASSERT(K >= 1 && P >= 0 && P < K);
}

// True when rows t .. t+rows-1 see all K taps inside [0, T) with left padding P.
inline bool window_inside(int64_t t, int64_t rows, int64_t T, int64_t K, int64_t P) {
  return t - P >= 0 && t + rows - 1 + (K - 1 - P) < T;
}

// The forward pass and the gather form of ∂x are the same sum, for every head h of one sequence:
//   out[t, h·R + r] (+)= Σ_k W(t, h, k) · in[t + k - pad, h·R + r]     over 0 <= t+k-pad < T,
// with W(t, h, k) = w[w_base + t·wj + h·K + k·wk]. `out` and `in` point at the sequence's row 0.
struct TapSums {
  float* out;
  const float* in;
  const float* w;
  int64_t w_base, wj, wk;
  int64_t T, C, H, K, pad;
  bool accumulate;
};

// Rows [t0, t1) of a TapSums: tiles of kTileRows rows where whole windows fit, one row at a time
// near the edges (with its valid taps only). All heads of a tile are done before the next tile:
// the tiles then walk down whole rows, a sequential stream the hardware prefetcher follows,
// and the window of K + kTileRows rows (70 KB at C = 512) stays in L2.
void tap_sum_rows(const TapSums& p, int64_t t0, int64_t t1) {
  const int64_t C = p.C, R = p.C / p.H;
  for (int64_t t = t0; t < t1;) {
    if (t + kTileRows <= t1 && window_inside(t, kTileRows, p.T, p.K, p.pad)) {
      for (int64_t h = 0; h < p.H; ++h)
        tap_sums<kTileRows>(p.out + t * C + h * R, C, R, p.accumulate,
                            p.in + (t - p.pad) * C + h * R, p.w + (p.w_base + t * p.wj + h * p.K),
                            p.wj, p.wk, p.K);
      t += kTileRows;
    } else {
      const int64_t k0 = std::max<int64_t>(0, p.pad - t);
      const int64_t k1 = std::min<int64_t>(p.K, p.T - t + p.pad);
      for (int64_t h = 0; h < p.H; ++h)
        tap_sums<1>(p.out + t * C + h * R, C, R, p.accumulate, p.in + (t + k0 - p.pad) * C + h * R,
                    p.w + (p.w_base + t * p.wj + h * p.K + k0 * p.wk), p.wj, p.wk, k1 - k0);
      t += 1;
    }
  }
}

// Forward of rows [t0, t1) of sequence b:
//   y[b,t,c] = Σ_k w(b,t,h(c),k) · x[b, t+k-P, c].
// The weights of row (b, t) start at w + (b·T + t)·ws, with ws = H·K for DynamicConv (A is
// (B, T, H, K)) and ws = 0 for LightweightConv (W is (H, K)).
void forward_rows(const float* x, const float* w, int64_t ws, float* y, int64_t T, int64_t C,
                  int64_t H, int64_t K, int64_t P, int64_t b, int64_t t0, int64_t t1) {
  const int64_t first = b * T * C;
  const TapSums p{y + first, x + first, w, b * T * ws, ws, 1, T, C, H, K, P, false};
  tap_sum_rows(p, t0, t1);
}

// ∂x of rows [u0, u1) of sequence b, gather form:
//   gx[b,u,c] += Σ_k w(b, u-k+P, h(c), k) · gy[b, u-k+P, c].
// With the taps flipped, k' = K-1-k, this is a forward sum with left padding P' = K-1-P:
//   gx[u] += Σ_k' w(b, u+k'-P', h, K-1-k') · gy[u+k'-P'],
// whose weight sits at (b·T + u+k'-P')·ws + h·K + K-1-k': it moves by ws per row, ws-1 per tap.
void grad_input_rows(const float* w, int64_t ws, const float* gy, float* gx, int64_t T, int64_t C,
                     int64_t H, int64_t K, int64_t P, int64_t b, int64_t u0, int64_t u1) {
  const int64_t first = b * T * C, Pf = K - 1 - P;
  const TapSums p{gx + first, gy + first, w, (b * T - Pf) * ws + K - 1, ws, ws - 1, T, C, H, K,
                  Pf, true};
  tap_sum_rows(p, u0, u1);
}

// ∂w of rows [t0, t1) of sequence b, every head h:
//   out[t·out_row_step + h·K + k] += Σ_{c in head h} gy[b,t,c] · x[b,t+k-P,c].
// DynamicConv passes ga at the sequence's row 0 (out_row_step = H·K); LightweightConv passes a
// per-thread (H, K) double buffer (out_row_step = 0: every row adds into the same taps).
template <typename Acc>
void grad_weight_rows(const float* x, const float* gy, Acc* out, int64_t out_row_step, int64_t T,
                      int64_t C, int64_t H, int64_t K, int64_t P, int64_t b, int64_t t0,
                      int64_t t1) {
  const int64_t R = C / H;
  const float* xb = x + b * T * C;
  const float* gb = gy + b * T * C;
  float tile[kDotRows][kDotTaps];
  for (int64_t t = t0; t < t1;) {
    if (K >= kDotTaps && t + kDotRows <= t1 && window_inside(t, kDotRows, T, K, P)) {
      // kDotRows rows with whole windows: tiles of kDotTaps taps. A short last group of taps is
      // shifted back to end at K, and the taps it repeats are skipped.
      for (int64_t h = 0; h < H; ++h)
        for (int64_t k0 = 0; k0 < K; k0 += kDotTaps) {
          const int64_t ks = std::min(k0, K - kDotTaps);
          dots_tile<kDotRows>(gb + t * C + h * R, xb + (t + ks - P) * C + h * R, C, R, tile);
          for (int64_t j = 0; j < kDotRows; ++j)
            for (int64_t i = k0 - ks; i < kDotTaps; ++i)
              out[(t + j) * out_row_step + h * K + ks + i] += tile[j][i];
        }
      t += kDotRows;
    } else {
      // One row with its valid taps [k0, k1) only.
      const int64_t k0 = std::max<int64_t>(0, P - t), k1 = std::min<int64_t>(K, T - t + P);
      for (int64_t h = 0; h < H; ++h) {
        Acc* out_th = out + t * out_row_step + h * K;
        const float* g = gb + t * C + h * R;
        const float* x_first = xb + (t + k0 - P) * C + h * R;  // row of tap k0
        int64_t k = k0;
        for (; k + kDotTaps <= k1; k += kDotTaps) {
          dots_tile<1>(g, x_first + (k - k0) * C, C, R, tile);
          for (int64_t i = 0; i < kDotTaps; ++i) out_th[k + i] += tile[0][i];
        }
        for (; k < k1; ++k) out_th[k] += dot(g, x_first + (k - k0) * C, R);
      }
      t += 1;
    }
  }
}

// Work is split over blocks of kTimeBlock rows of one sequence: small enough to give every thread
// work on short batches; the K-1 window rows a block shares with the previous block of the same
// thread are then usually still in L2.
constexpr int64_t kTimeBlock = 32;

// Forward for both convolutions.
void conv_forward(const float* x, const float* w, int64_t w_row_step, float* y, int64_t B,
                  int64_t T, int64_t C, int64_t H, int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  const int64_t blocks_per_b = (T + kTimeBlock - 1) / kTimeBlock;
#pragma omp parallel for schedule(static) if (B * T * C * K >= kParallelMinWork)
  for (int64_t blk = 0; blk < B * blocks_per_b; ++blk) {
    const int64_t b = blk / blocks_per_b, t0 = (blk % blocks_per_b) * kTimeBlock;
    const int64_t t1 = std::min(T, t0 + kTimeBlock);
    forward_rows(x, w, w_row_step, y, T, C, H, K, P, b, t0, t1);
  }
}

}  // namespace

// ---- DynamicConv -------------------------------------------------------------------------------

void dynamic_conv_forward(const float* x, const float* a, float* y, int64_t B, int64_t T, int64_t C,
                          int64_t H, int64_t K, int64_t P) {
  conv_forward(x, a, H * K, y, B, T, C, H, K, P);
}

void dynamic_conv_backward(const float* x, const float* a, const float* gy, float* gx, float* ga,
                           int64_t B, int64_t T, int64_t C, int64_t H, int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  if (gx == nullptr && ga == nullptr) return;
  const int64_t blocks_per_b = (T + kTimeBlock - 1) / kTimeBlock;
  const int64_t work = B * T * C * K * ((gx != nullptr) + (ga != nullptr));
  // Both gradients of a block in one pass: rows [t0, t1) of ga read gy[b, t0..t1) and the input
  // rows around them; rows [t0, t1) of gx read the gy rows around them. Each block writes only
  // its own rows of ga and gx, so there are no races.
#pragma omp parallel for schedule(static) if (work >= kParallelMinWork)
  for (int64_t blk = 0; blk < B * blocks_per_b; ++blk) {
    const int64_t b = blk / blocks_per_b, t0 = (blk % blocks_per_b) * kTimeBlock;
    const int64_t t1 = std::min(T, t0 + kTimeBlock);
    if (ga != nullptr) grad_weight_rows(x, gy, ga + b * T * H * K, H * K, T, C, H, K, P, b, t0, t1);
    if (gx != nullptr) grad_input_rows(a, H * K, gy, gx, T, C, H, K, P, b, t0, t1);
  }
}

// ---- LightweightConv ---------------------------------------------------------------------------

void lightweight_conv_forward(const float* x, const float* w, float* y, int64_t B, int64_t T,
                              int64_t C, int64_t H, int64_t K, int64_t P) {
  conv_forward(x, w, 0, y, B, T, C, H, K, P);
}

void lightweight_conv_backward(const float* x, const float* w, const float* gy, float* gx,
                               float* gw, int64_t B, int64_t T, int64_t C, int64_t H, int64_t K,
                               int64_t P) {
  check_sizes(B, T, C, H, K, P);
  if (gx == nullptr && gw == nullptr) return;
  const int64_t blocks_per_b = (T + kTimeBlock - 1) / kTimeBlock;
  const int64_t work = B * T * C * K * ((gx != nullptr) + (gw != nullptr));
  const bool parallel = work >= kParallelMinWork;
  // ∂w is a sum over all (b, t): every thread adds into its own (H, K) buffer, in double so that
  // summing B·T per-row dot products loses nothing; the buffers are added in thread order below.
  // With schedule(static) each thread gets the same blocks on every run, so the bits repeat.
  const int max_threads = parallel ? omp_get_max_threads() : 1;
  std::vector<double> partial(gw != nullptr ? max_threads * H * K : 0, 0.0);  // (threads, H, K)
#pragma omp parallel if (parallel)
  {
    double* mine = gw != nullptr ? partial.data() + omp_get_thread_num() * H * K : nullptr;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < B * blocks_per_b; ++blk) {
      const int64_t b = blk / blocks_per_b, t0 = (blk % blocks_per_b) * kTimeBlock;
      const int64_t t1 = std::min(T, t0 + kTimeBlock);
      if (gw != nullptr) grad_weight_rows(x, gy, mine, 0, T, C, H, K, P, b, t0, t1);
      if (gx != nullptr) grad_input_rows(w, 0, gy, gx, T, C, H, K, P, b, t0, t1);
    }
  }
  if (gw != nullptr)
    for (int64_t i = 0; i < H * K; ++i) {
      double sum = gw[i];
      for (int th = 0; th < max_threads; ++th) sum += partial[th * H * K + i];
      gw[i] = static_cast<float>(sum);
    }
}

// ---- Incremental decoding ----------------------------------------------------------------------

namespace {
// Shared by both step helpers; tap weights of hypothesis n start at w + n·w_row_step.
void conv_step(const float* window, const float* w, int64_t w_row_step, float* y, int64_t N,
               int64_t C, int64_t H, int64_t K, int64_t j) {
  PAYLESS_ASSERT(N >= 0 && C >= 0 && H >= 1 && C % H == 0);
  PAYLESS_ASSERT(K >= 1 && j >= 1 && j <= K);
  const int64_t R = C / H;
#pragma omp parallel for schedule(static) if (N * C * j >= kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* win = window + n * j * C;              // (j, C), oldest first
    const float* w_row = w + n * w_row_step + (K - j);  // window row i meets tap K-j+i
    for (int64_t h = 0; h < H; ++h)
      tap_sums<1>(y + n * C + h * R, C, R, /*accumulate=*/false, win + h * R, w_row + h * K, 0, 1,
                  j);
  }
}
}  // namespace

void dynamic_conv_step(const float* window, const float* a, float* y, int64_t N, int64_t C,
                       int64_t H, int64_t K, int64_t j) {
  conv_step(window, a, H * K, y, N, C, H, K, j);
}

void lightweight_conv_step(const float* window, const float* w, float* y, int64_t N, int64_t C,
                           int64_t H, int64_t K, int64_t j) {
  conv_step(window, w, 0, y, N, C, H, K, j);
}

// ---- Reference loops ---------------------------------------------------------------------------
// Straight from the formulas in conv.h. Each output element is summed in double so that the
// references are the more accurate side of every comparison.

void dynamic_conv_forward_reference(const float* x, const float* a, float* y, int64_t B, int64_t T,
                                    int64_t C, int64_t H, int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  const int64_t R = C / H;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t h = c / R;
        double sum = 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t + k - P;
          if (s < 0 || s >= T) continue;
          sum += double(a[((b * T + t) * H + h) * K + k]) * x[(b * T + s) * C + c];
        }
        y[(b * T + t) * C + c] = static_cast<float>(sum);
      }
}

void dynamic_conv_backward_reference(const float* x, const float* a, const float* gy, float* gx,
                                     float* ga, int64_t B, int64_t T, int64_t C, int64_t H,
                                     int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  const int64_t R = C / H;
  if (ga != nullptr)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t + k - P;
            if (s < 0 || s >= T) continue;
            double sum = 0.0;
            for (int64_t c = h * R; c < (h + 1) * R; ++c)
              sum += double(gy[(b * T + t) * C + c]) * x[(b * T + s) * C + c];
            ga[((b * T + t) * H + h) * K + k] += static_cast<float>(sum);
          }
  if (gx != nullptr)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < T; ++s)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t h = c / R;
          double sum = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t t = s - k + P;
            if (t < 0 || t >= T) continue;
            sum += double(a[((b * T + t) * H + h) * K + k]) * gy[(b * T + t) * C + c];
          }
          gx[(b * T + s) * C + c] += static_cast<float>(sum);
        }
}

void lightweight_conv_forward_reference(const float* x, const float* w, float* y, int64_t B,
                                        int64_t T, int64_t C, int64_t H, int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  const int64_t R = C / H;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t + k - P;
          if (s < 0 || s >= T) continue;
          sum += double(w[(c / R) * K + k]) * x[(b * T + s) * C + c];
        }
        y[(b * T + t) * C + c] = static_cast<float>(sum);
      }
}

void lightweight_conv_backward_reference(const float* x, const float* w, const float* gy,
                                         float* gx, float* gw, int64_t B, int64_t T, int64_t C,
                                         int64_t H, int64_t K, int64_t P) {
  check_sizes(B, T, C, H, K, P);
  const int64_t R = C / H;
  if (gw != nullptr)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < K; ++k) {
        double sum = 0.0;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = 0; t < T; ++t) {
            const int64_t s = t + k - P;
            if (s < 0 || s >= T) continue;
            for (int64_t c = h * R; c < (h + 1) * R; ++c)
              sum += double(gy[(b * T + t) * C + c]) * x[(b * T + s) * C + c];
          }
        gw[h * K + k] += static_cast<float>(sum);
      }
  if (gx != nullptr)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < T; ++s)
        for (int64_t c = 0; c < C; ++c) {
          double sum = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t t = s - k + P;
            if (t < 0 || t >= T) continue;
            sum += double(w[(c / R) * K + k]) * gy[(b * T + t) * C + c];
          }
          gx[(b * T + s) * C + c] += static_cast<float>(sum);
        }
}

}  // namespace payless::kernels
