// The attention of a decoding step, fused: scores, softmax and weighted sum of values for a few
// new queries against cached keys and values, on raw buffers (layers/attention.cpp calls it).
//
// Why a kernel of its own: at a decoding step each (hypothesis, head) pair has T' = 1 query and
// L cached keys, so the batched-matmul route of whole-sequence attention makes 2·N·H tiny GEMM
// calls, a softmax pass and two head reshuffles per layer, and needs the cache in (B, H, L, D)
// order, which cannot grow in place. Here the cache is (rows, capacity, C), one position after
// another with the heads side by side in each, exactly what the key and value projections
// produce: a step appends C floats per hypothesis and nothing is copied or reshuffled.
//
// What this is not: a training kernel. There is no backward and no dropout; the layer takes its
// general path for those.
#pragma once

#include <cstdint>

namespace payless::kernels {

// Where a step's attention reads and writes. C = H·D channels, head h in [h·D, (h+1)·D).
struct CachedAttention {
  int64_t rows = 0;    // N hypotheses
  int64_t queries = 0; // T' new queries per hypothesis
  int64_t heads = 0;   // H
  int64_t head_dim = 0;  // D
  int64_t length = 0;  // L cached positions to attend over
  const float* q = nullptr;  // (N, T', C), already multiplied by D^-1/2
  // Cache row r: position l at keys + r·cache_stride + l·C (values likewise).
  const float* keys = nullptr;
  const float* values = nullptr;
  int64_t cache_stride = 0;
  const int64_t* row_of = nullptr;  // hypothesis n reads cache row row_of[n]; nullptr: row n
  // Padding of cache row r: mask[r·mask_stride + l] != 0 hides position l; nullptr: none.
  const float* mask = nullptr;
  int64_t mask_stride = 0;
  // Query t is position L - T' + t and sees positions [0, L - T' + t] (self-attention); false:
  // every query sees all L positions (encoder-decoder attention).
  bool causal = false;
  float* out = nullptr;  // (N, T', C), head-major channels as out_proj expects them
};

// Per hypothesis n, query t, head h:
//   s_l = q·k_l, or masked_score where the mask hides l      (l over the visible positions)
//   p = softmax(s),  out = Σ_l p_l · v_l
// masked_score is the layer's large negative score (not -inf): a query whose keys are all
// hidden then gets the plain average of their values, as the whole-sequence path gives it.
// (n, h) pairs are split over threads only when the work pays for waking them; each output is
// written by one thread with the same code, so the result does not depend on the thread count.
void attend_cached(const CachedAttention& a, float masked_score);

// The same in double with std::exp and plain loops, for the tests.
void attend_cached_reference(const CachedAttention& a, float masked_score);

}  // namespace payless::kernels
