// Multi-head attention as fused kernels on raw buffers: whole sequences with dropout, forward and
// backward (the op attention() in core/ops/attention.cpp), and a decoding step's few new queries
// against cached keys and values (layers/attention.cpp).
//
// Whole sequences: per (batch row, head) the scores q·kᵀ, masks, softmax, dropout and the
// weighted sum of values in one pass over that pair's rows, reading q, k and v where the
// projections put them, (B, T, C) with the heads side by side. Composed of ops, the same took two
// batched GEMMs of B·H tiny products each (a tiny model's heads are 16 wide), three head
// reshuffles, and a masked_fill, softmax and dropout pass over (B, H, T, S), each again backward.
//
// Decoding steps: each (hypothesis, head) pair has T' = 1 query and L cached keys, so the
// batched-matmul route made 2·N·H one-row GEMM calls, a softmax pass and two head reshuffles per
// layer, and needed the cache in (B, H, L, D) order, which cannot grow in place. Here the cache
// is (rows, capacity, C), one position after another with the heads side by side in each,
// exactly what the key and value projections produce: a step appends C floats per hypothesis
// and nothing is copied or reshuffled.
#pragma once

#include <cstdint>

#include "core/rng.h"

namespace payless::kernels {

// ---- Whole sequences (training, scoring, the encoder)

// q (B, T, C), already multiplied by D^-1/2; k, v (B, S, C); C = H·D, head h in [h·D, (h+1)·D).
struct AttentionProblem {
  int64_t batch = 0, queries = 0, keys = 0, heads = 0, head_dim = 0;  // B, T, S, H, D
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* key_padding_mask = nullptr;  // (B, S), nonzero = padding; nullptr: none
  // Query t is position t + S - T and does not see later positions.
  bool causal = false;
  // The score of a hidden (query, key) pair. At or below kVanishingScore its probability is
  // exactly 0 next to any visible key (exp underflows), and causal rows then skip the hidden
  // keys' arithmetic altogether.
  float masked_score = 0.0f;
  // Inverted dropout on the probabilities of (B, H, T, S) with dropout_mask (core/rng.h): the
  // mask the dropout op draws for a (B, H, T, S) tensor.
  bool dropout = false;
  DropoutMask dropout_mask;
};

constexpr float kVanishingScore = -1e20f;

// Per batch row b, head h, query t: s_j = q_t·k_j, or a.masked_score where the padding mask or
// causality hides j; p = softmax(s) is written to probs (B, H, T, S) (for the backward);
// out_t = Σ_j dropout(p)_j · v_j is written to out (B, T, C).
void attention_forward(const AttentionProblem& a, float* probs, float* out);

// Given dout (B, T, C) and the forward's probs, ADDS the gradients to dq (B, T, C), dk and dv
// (B, S, C); pass nullptr for any not wanted. Two of them may be the same buffer (q and k the
// same tensor): every write is an addition, and one thread writes all of a batch row's rows.
//   dp_j = dropout(dout_t·v_j),  ds_j = p_j (dp_j − Σ_i p_i dp_i) (0 where hidden)
//   dq_t += Σ_j ds_j k_j,  dk_j += ds_j q_t,  dv_j += dropout(p)_j dout_t
void attention_backward(const AttentionProblem& a, const float* probs, const float* dout, float* dq,
                        float* dk, float* dv);

// ---- A decoding step over a cache

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
