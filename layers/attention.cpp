// See layers/attention.h. Only ops from core/ops.h here; the heavy lifting is the batched matmul.
#include "layers/attention.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
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
  keys = reorder_batch(keys, order);
  values = reorder_batch(values, order);
  key_padding_mask = reorder_batch(key_padding_mask, order);
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
  cache.keys = cache.empty() ? k : concat({cache.keys, k}, 2);  // (B, H, L, D)
  cache.values = cache.values.defined() ? concat({cache.values, v}, 2) : v;
  return attend(project_query(x), cache.keys, cache.values, Tensor(), /*causal=*/true);
}

Tensor MultiheadAttention::step_encoder_attention(const Tensor& x, const Tensor& encoder_out,
                                                  const Tensor& encoder_padding_mask,
                                                  AttentionCache& cache) const {
  NoGrad no_grad;
  check_input("step input", x);
  if (cache.empty()) {
    check_input("encoder_out", encoder_out);
    if (encoder_out.size(0) != x.size(0))
      fail("MultiheadAttention: encoder_out ", encoder_out.describe(), " and step input ",
           x.describe(), " have different batch sizes");
    cache.keys = split_heads(k_proj.forward(encoder_out));    // (B, H, S, D)
    cache.values = split_heads(v_proj.forward(encoder_out));  // (B, H, S, D)
    cache.key_padding_mask = encoder_padding_mask;            // (B, S) or undefined
  } else if (cache.keys.size(0) != x.size(0)) {
    fail("MultiheadAttention: encoder-attention cache has batch ", cache.keys.size(0),
         " but the step input is ", x.describe(), "; reorder the cache with the beams");
  }
  return attend(project_query(x), cache.keys, cache.values, cache.key_padding_mask, false);
}

}  // namespace payless
