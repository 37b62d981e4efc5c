// See layers/attention.h. Ops from core/ops.h, the heavy lifting being the batched matmul; the
// one exception is the incremental encoder-decoder attention (attend_shared_source), which reads
// the cached source through a row map and so calls the gemm and softmax kernels on raw rows.
#include "layers/attention.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/kernels/matmul.h"
#include "core/kernels/softmax.h"
#include "core/ops.h"
#include "layers/incremental.h"

namespace payless {
namespace {

// Uniform fill of a (fan_out, fan_in) weight with the Xavier bound times `gain`.
void xavier_uniform_with_gain(Tensor& w, float gain, Rng& rng) {
  const float bound = gain * std::sqrt(6.0f / static_cast<float>(w.size(0) + w.size(1)));
  rng.uniform_(w, -bound, bound);
}

// (T, S) mask, 1 where key j lies in the future of query t. The T queries are the last T of the
// S positions, so query t sits at position t + (S - T).
Tensor future_mask(int64_t T, int64_t S) {
  Tensor mask = Tensor::zeros({T, S});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = t + (S - T) + 1; j < S; ++j) mask.data()[t * S + j] = 1.0f;
  return mask;
}

}  // namespace

// ---- AttentionCache

void AttentionCache::reorder(const std::vector<int64_t>& order) {
  if (!empty() && !shared_source) {
    keys = reorder_batch(keys, order);
    values = reorder_batch(values, order);
    key_padding_mask = reorder_batch(key_padding_mask, order);
    return;
  }
  // rows' = rows ∘ order. Before the first step the batch size is not known yet: the indices
  // are checked against encoder_out when the cache is filled.
  const int64_t batch = rows.empty() ? (empty() ? -1 : keys.size(0)) : static_cast<int64_t>(rows.size());
  std::vector<int64_t> composed(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0 || (batch >= 0 && order[i] >= batch))
      fail("AttentionCache::reorder: index ", order[i], " is outside the batch of ", batch, " rows");
    composed[i] = rows.empty() ? order[i] : rows[order[i]];
  }
  rows = std::move(composed);
}

void AttentionCache::trim(int64_t length) {
  if (empty()) return;
  if (length < 0 || length > keys.size(2))
    fail("AttentionCache::trim: length ", length, " is outside [0, ", keys.size(2), "]");
  if (length == 0) {
    clear();
    return;
  }
  NoGrad no_grad;
  keys = narrow(keys, 2, 0, length);
  values = narrow(values, 2, 0, length);
  if (key_padding_mask.defined()) key_padding_mask = narrow(key_padding_mask, 1, 0, length);
}

// ---- MultiheadAttention

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, float attention_dropout,
                                       bool bias, Rng& rng)
    : embed_dim(embed_dim),
      num_heads(num_heads),
      head_dim(num_heads > 0 ? embed_dim / num_heads : 0),
      attention_dropout(attention_dropout),
      q_proj(embed_dim, embed_dim, bias, rng),
      k_proj(embed_dim, embed_dim, bias, rng),
      v_proj(embed_dim, embed_dim, bias, rng),
      out_proj(embed_dim, embed_dim, bias, rng) {
  if (num_heads <= 0 || embed_dim % num_heads != 0)
    fail("MultiheadAttention: embed_dim ", embed_dim, " is not divisible by num_heads ", num_heads);
  if (attention_dropout < 0.0f || attention_dropout >= 1.0f)
    fail("MultiheadAttention: attention_dropout must be in [0, 1), got ", attention_dropout);
  // out_proj keeps Linear's plain Xavier weight and zero bias. q, k, v: Xavier with gain 1/sqrt(2)
  // (with the three maps fused, as in the paper era, that is the bound of one (3C, C) matrix).
  const float gain = 1.0f / std::sqrt(2.0f);
  const float bias_bound = 1.0f / std::sqrt(static_cast<float>(embed_dim));
  for (Linear* proj : {&q_proj, &k_proj, &v_proj}) {
    xavier_uniform_with_gain(proj->weight, gain, rng);
    if (bias) rng.uniform_(proj->bias, -bias_bound, bias_bound);
  }
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("out_proj", out_proj);
}

void MultiheadAttention::check_input(const char* what, const Tensor& x) const {
  if (x.rank() != 3 || x.size(2) != embed_dim)
    fail("MultiheadAttention: ", what, " ", x.describe(), " must be (B, T, ", embed_dim, ")");
}

Tensor MultiheadAttention::split_heads(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1);
  return transpose(reshape(x, {B, T, num_heads, head_dim}), 1, 2);  // (B, H, T, D)
}

Tensor MultiheadAttention::project_query(const Tensor& x) const {
  // The scale multiplies the projected query bias included, as fairseq does (spec §5.1).
  return split_heads(scale(q_proj.forward(x), 1.0f / std::sqrt(static_cast<float>(head_dim))));
}

Tensor MultiheadAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& key_padding_mask, bool causal) const {
  const int64_t B = q.size(0), T = q.size(2), S = k.size(2);
  Tensor scores = matmul(q, k, false, true);  // (B, H, T, S) = q·kᵀ per head
  if (causal && T > 1) scores = masked_fill(scores, future_mask(T, S), kMaskedScore);
  if (key_padding_mask.defined()) {
    if (key_padding_mask.shape() != Shape{B, S})
      fail("MultiheadAttention: key_padding_mask ", key_padding_mask.describe(), " must be (B, S) = [",
           B, ", ", S, "]");
    scores = masked_fill(scores, reshape(key_padding_mask, {B, 1, 1, S}), kMaskedScore);
  }
  Tensor probs = softmax(scores);                                   // (B, H, T, S), over keys
  probs = dropout(probs, attention_dropout, is_training());
  Tensor heads = matmul(probs, v);                                  // (B, H, T, D)
  Tensor merged = reshape(transpose(heads, 1, 2), {B, T, embed_dim});  // (B, T, C), head-major channels
  return out_proj.forward(merged);
}

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& key_padding_mask, bool causal) const {
  check_input("query", query);
  check_input("key", key);
  check_input("value", value);
  if (key.shape() != value.shape() || key.size(0) != query.size(0))
    fail("MultiheadAttention: query ", query.describe(), ", key ", key.describe(), " and value ",
         value.describe(), " must share B, and key and value must have the same shape");
  if (causal && key.size(1) < query.size(1))
    fail("MultiheadAttention: causal attention needs at least as many keys as queries, got query ",
         query.describe(), " and key ", key.describe());
  Tensor q = project_query(query);            // (B, H, T, D)
  Tensor k = split_heads(k_proj.forward(key));   // (B, H, S, D)
  Tensor v = split_heads(v_proj.forward(value)); // (B, H, S, D)
  return attend(q, k, v, key_padding_mask, causal);
}

Tensor MultiheadAttention::step_self_attention(const Tensor& x, AttentionCache& cache) const {
  NoGrad no_grad;
  check_input("step input", x);
  if (!cache.empty() && (cache.keys.size(0) != x.size(0) || cache.key_padding_mask.defined()))
    fail("MultiheadAttention: self-attention cache holds ", cache.keys.describe(),
         " (with a padding mask: ", cache.key_padding_mask.defined(), "), which does not fit step input ",
         x.describe(), "; was it filled by encoder attention or not reordered?");
  Tensor k = split_heads(k_proj.forward(x));  // (B, H, T', D)
  Tensor v = split_heads(v_proj.forward(x));
  if (cache.empty()) cache.rows.clear();  // reorders before the first step change nothing here
  cache.keys = cache.empty() ? k : concat({cache.keys, k}, 2);  // (B, H, L, D)
  cache.values = cache.values.defined() ? concat({cache.values, v}, 2) : v;
  return attend(project_query(x), cache.keys, cache.values, Tensor(), /*causal=*/true);
}

Tensor MultiheadAttention::step_encoder_attention(const Tensor& x, const Tensor& encoder_out,
                                                  const Tensor& encoder_padding_mask,
                                                  AttentionCache& cache) const {
  NoGrad no_grad;
  check_input("step input", x);
  const int64_t N = x.size(0);
  if (cache.empty()) {
    check_input("encoder_out", encoder_out);
    const int64_t B0 = encoder_out.size(0);
    if (cache.rows.empty() && B0 != N)
      fail("MultiheadAttention: encoder_out ", encoder_out.describe(), " and step input ",
           x.describe(), " have different batch sizes");
    if (!cache.rows.empty() && static_cast<int64_t>(cache.rows.size()) != N)
      fail("MultiheadAttention: the encoder-attention cache was reordered to ", cache.rows.size(),
           " rows but the step input is ", x.describe());
    for (int64_t r : cache.rows)
      if (r >= B0)
        fail("MultiheadAttention: a reorder before the first step picked row ", r,
             " of encoder_out ", encoder_out.describe(), " (pass the encoder output unreordered)");
    // One projection per source sentence, not per hypothesis.
    cache.keys = split_heads(k_proj.forward(encoder_out));    // (B0, H, S, D)
    cache.values = split_heads(v_proj.forward(encoder_out));  // (B0, H, S, D)
    cache.key_padding_mask = encoder_padding_mask;            // (B0, S) or undefined
    cache.shared_source = true;
  } else if ((cache.rows.empty() ? cache.keys.size(0) : static_cast<int64_t>(cache.rows.size())) != N) {
    fail("MultiheadAttention: encoder-attention cache has batch ",
         cache.rows.empty() ? cache.keys.size(0) : static_cast<int64_t>(cache.rows.size()),
         " but the step input is ", x.describe(), "; reorder the cache with the beams");
  }
  if (cache.key_padding_mask.defined() &&
      cache.key_padding_mask.shape() != Shape{cache.keys.size(0), cache.keys.size(2)})
    fail("MultiheadAttention: key_padding_mask ", cache.key_padding_mask.describe(), " must be (B, S) = [",
         cache.keys.size(0), ", ", cache.keys.size(2), "]");
  if (is_training() && attention_dropout > 0.0f) {
    // Dropout on the probabilities goes through the general path, on copied rows.
    AttentionCache copy = cache;
    if (!copy.rows.empty()) {
      copy.keys = reorder_batch(copy.keys, copy.rows);
      copy.values = reorder_batch(copy.values, copy.rows);
      copy.key_padding_mask = reorder_batch(copy.key_padding_mask, copy.rows);
    }
    return attend(project_query(x), copy.keys, copy.values, copy.key_padding_mask, false);
  }
  return attend_shared_source(x, cache);
}

Tensor MultiheadAttention::attend_shared_source(const Tensor& x, const AttentionCache& cache) const {
  const int64_t N = x.size(0), T = x.size(1), C = embed_dim, H = num_heads, D = head_dim;
  const int64_t S = cache.keys.size(2);
  // q (N, T, C), scaled, head h in channels [h·D, (h+1)·D): heads stay interleaved, the gemm
  // calls below read them with row stride C.
  Tensor q = scale(q_proj.forward(x), 1.0f / std::sqrt(static_cast<float>(D)));
  Tensor merged = Tensor::empty({N, T, C});  // (N, T, C), head-major channels as attend() merges
  const float *pq = q.data(), *pk = cache.keys.data(), *pv = cache.values.data();
  const float* mask = cache.key_padding_mask.defined() ? cache.key_padding_mask.data() : nullptr;
  float* out = merged.data();
  auto row_of = [&](int64_t n) { return cache.rows.empty() ? n : cache.rows[n]; };
  // Consecutive hypotheses of the same sentence (the beams of one sentence) form one product:
  // their T·count query rows against the sentence's S keys, per head. Scores of every head and
  // hypothesis go to one (H, N·T, S) buffer, so that the softmax is one call per step, not one per
  // (hypothesis, head): at batch 32 those calls were a fifth of a tiny model's step.
  std::vector<int64_t> group_start;  // hypotheses [group_start[g], group_start[g + 1]) share a row
  for (int64_t n = 0; n < N; ++n)
    if (n == 0 || row_of(n) != row_of(n - 1)) group_start.push_back(n);
  group_start.push_back(N);
  std::vector<float> scores(H * N * T * S), probs(H * N * T * S);  // (H, N·T, S)
  for (size_t g = 0; g + 1 < group_start.size(); ++g) {
    const int64_t n0 = group_start[g], R = (group_start[g + 1] - n0) * T, r = row_of(n0);
    for (int64_t h = 0; h < H; ++h) {
      float* sc = scores.data() + (h * N * T + n0 * T) * S;  // (R, S)
      // scores = q_h · k_hᵀ, k_h (S, D) of sentence r
      kernels::gemm(false, true, R, S, D, 1.0f, pq + n0 * T * C + h * D, C,
                    pk + (r * H + h) * S * D, D, 0.0f, sc, S);
      if (mask)
        for (int64_t i = 0; i < R; ++i)
          for (int64_t s = 0; s < S; ++s)
            if (mask[r * S + s] != 0.0f) sc[i * S + s] = kMaskedScore;
    }
  }
  kernels::softmax_rows(scores.data(), probs.data(), H * N * T, S);
  for (size_t g = 0; g + 1 < group_start.size(); ++g) {
    const int64_t n0 = group_start[g], R = (group_start[g + 1] - n0) * T, r = row_of(n0);
    for (int64_t h = 0; h < H; ++h)
      // o_h (R, D) = probs · v_h, written into its head's channels of the merged rows
      kernels::gemm(false, false, R, D, S, 1.0f, probs.data() + (h * N * T + n0 * T) * S, S,
                    pv + (r * H + h) * S * D, D, 0.0f, out + n0 * T * C + h * D, C);
  }
  return out_proj.forward(merged);
}

}  // namespace payless
