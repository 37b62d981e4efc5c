// Multi-head attention as fairseq's MultiheadAttention (spec §5.1): the Transformer's self- and
// encoder-decoder attention, and the encoder-decoder attention of the LightConv/DynamicConv decoder.
//
//   q = (x·Wqᵀ + bq) · D^-1/2      k = y·Wkᵀ + bk      v = y·Wvᵀ + bv       (D = C / H)
//   per head h (channels [h·D, (h+1)·D)):  P = softmax(q_h·k_hᵀ + masks),  o_h = dropout(P)·v_h
//   out = concat_h(o_h)·Woutᵀ + bout
//
// Tensors are batch-major: x (B, T, C), keys/values from y (B, S, C), the heads side by side in
// the channels; the per-head products, masks, softmax and dropout are one op, attention() in
// core/ops.h (fused kernels in core/kernels/attention.h). Masked scores are set to a large
// negative number (not -inf): a query whose keys are all masked then gets a uniform average
// instead of NaN.
// Parameter names: q_proj, k_proj, v_proj, out_proj (current fairseq; the paper-era fused
// in_proj_weight (3C, C) = [Wq; Wk; Wv] can be split into these on import).
// Initialisation (current fairseq): q/k/v weights Xavier-uniform with gain 1/sqrt(2), their
// biases U(±1/sqrt(C)) (PyTorch's nn.Linear default, which fairseq leaves in place); out weight
// Xavier-uniform, out bias 0.
//
// Incremental decoding keeps the projected keys and values in an AttentionCache that the caller
// owns (one per attention module per decode) and reorders for beam search. An encoder-decoder
// cache holds the projected source once per sentence, however many hypotheses share it: beam
// search's reorders only rewrite which sentence each hypothesis reads (AttentionCache::rows).
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace payless {

// Score given to masked (query, key) pairs. exp(kMaskedScore - max) is exactly 0 in float for any
// realistic max, so this equals -inf wherever at least one key is visible.
constexpr float kMaskedScore = -1e30f;

// One attention module's incremental state.
//
// Keys and values are kept as the projections produce them, (B, capacity, C): position l of row b
// at [b, l], the heads side by side in its C channels (head h in [h·D, (h+1)·D)). Positions
// [0, length()) are filled. A self-attention step writes its new positions in place behind them
// (the capacity doubles when full), so a step copies C floats per hypothesis, not the whole prefix
// (cached_attention() in core/ops.h reads this layout directly).
struct AttentionCache {
  Tensor keys;              // (B, capacity, C)
  Tensor values;            // (B, capacity, C)
  Tensor key_padding_mask;  // (B, L), 1 = pad; encoder-decoder attention only, else undefined
  // Encoder-decoder attention: batch row n reads row rows[n] of keys, values and key_padding_mask
  // (which then hold one row per source sentence); empty: row n reads row n. Copying the
  // projected source at every reorder cost 2·L·C floats per hypothesis per layer per step.
  std::vector<int64_t> rows;
  bool shared_source = false;  // filled by step_encoder_attention: reorders rewrite `rows` only
  int64_t filled = 0;          // positions written

  bool empty() const { return !keys.defined(); }
  int64_t length() const { return filled; }
  // The number of batch rows the cache holds (for an encoder cache: source sentences).
  int64_t batch() const { return empty() ? 0 : keys.size(0); }
  // Self-attention: write k, v (B, T', C) at positions [length(), length() + T'). Buffers still
  // shared with a copy of this cache are copied first, so two copies never write into each other.
  void append(const Tensor& k, const Tensor& v);
  // Beam search: keep batch rows order[0], order[1], ... (rows may repeat or be dropped). On an
  // encoder-decoder cache, and on an empty one, this composes `rows` and copies nothing: the
  // source projected at the first step is that of the ORIGINAL batch, read through `rows`.
  void reorder(const std::vector<int64_t>& order);
  // Forget the last steps, keeping the first `length` (self-attention caches).
  void trim(int64_t length);
  void clear() { *this = AttentionCache(); }
};

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, float attention_dropout = 0.0f,
                     bool bias = true, Rng& rng = global_rng());

  // Whole sequences (training, scoring, the encoder).
  //   query (B, T, C); key, value (B, S, C) (pass the same tensor three times for self-attention)
  //   key_padding_mask (B, S): 1 where the key is padding, or undefined
  //   causal: query t sees only keys j <= t + (S - T) (with T == S: the usual future mask)
  //   -> (B, T, C)
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value,
                 const Tensor& key_padding_mask = Tensor(), bool causal = false) const;

  // Incremental causal self-attention (runs under NoGrad). x (B, T', C) holds the newest T' steps
  // (T' = 1 when decoding token by token); their keys and values are appended to the cache and
  // they attend to every cached step, earlier ones and themselves. -> (B, T', C)
  Tensor step_self_attention(const Tensor& x, AttentionCache& cache) const;

  // Incremental encoder-decoder attention (runs under NoGrad). x (B, T', C). On the first call
  // (empty cache) keys and values are projected from encoder_out (B0, S, C) and stored with
  // encoder_padding_mask (B0, S) (may be undefined); later calls use the cache and ignore both
  // arguments, so reorder the cache rather than the encoder output. Reorders made before the
  // first call are remembered by the cache: pass encoder_out in its original order (B0 rows,
  // each hypothesis reading row cache.rows[n]); with no reorder, B0 = B. -> (B, T', C)
  Tensor step_encoder_attention(const Tensor& x, const Tensor& encoder_out,
                                const Tensor& encoder_padding_mask, AttentionCache& cache) const;

  const int64_t embed_dim, num_heads, head_dim;
  const float attention_dropout;
  Linear q_proj, k_proj, v_proj, out_proj;

 private:
  // (B, T, C) -> q_proj(x) · D^-1/2, (B, T, C)
  Tensor project_query(const Tensor& x) const;
  // q (B, T, C) already scaled, k and v (B, S, C) -> (B, T, C) after out_proj.
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask,
                bool causal) const;
  // attend() for a step's queries x (B, T', C) against the cache, in place (through cache.rows
  // for an encoder cache) -> (B, T', C) after out_proj. causal: the queries are the cache's last
  // T' positions (self-attention).
  Tensor attend_cache(const Tensor& x, const AttentionCache& cache, bool causal) const;
  void check_input(const char* what, const Tensor& x) const;
};

}  // namespace payless
