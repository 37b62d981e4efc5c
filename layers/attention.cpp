// See layers/attention.h. Ops from core/ops.h: the projections, attention() for the heads'
// products, masks, softmax and dropout, and cached_attention() for a decoding step, which reads
// the cache in place (through a row map for beams).
#include "layers/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

}  // namespace

// ---- AttentionCache

namespace {

constexpr int64_t kMinCacheCapacity = 32;  // positions; doubled when full

// Whether another handle, or a view, shares this tensor's buffer.
bool shared(const Tensor& t) { return t.use_count() > 1 || t.impl().storage.use_count() > 1; }

// x (B, capacity, C) -> (order.size(), capacity', C) with row i = the first `filled` positions of
// row order[i] of x.
Tensor gather_filled(const Tensor& x, const std::vector<int64_t>& order, int64_t filled, int64_t capacity) {
  const int64_t C = x.size(2), old_capacity = x.size(1);
  Tensor out = Tensor::empty({static_cast<int64_t>(order.size()), capacity, C});
  for (size_t i = 0; i < order.size(); ++i)
    std::memcpy(out.data() + static_cast<int64_t>(i) * capacity * C, x.data() + order[i] * old_capacity * C,
                sizeof(float) * filled * C);
  return out;
}

std::vector<int64_t> identity_order(int64_t n) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  return order;
}

}  // namespace

void AttentionCache::append(const Tensor& k, const Tensor& v) {
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  const int64_t capacity = empty() ? 0 : keys.size(1);
  if (empty() || filled + T > capacity || shared(keys) || shared(values)) {
    const int64_t grown = filled + T > capacity ? std::max({filled + T, 2 * capacity, kMinCacheCapacity}) : capacity;
    if (empty()) {
      keys = Tensor::empty({B, grown, C});
      values = Tensor::empty({B, grown, C});
    } else {
      keys = gather_filled(keys, identity_order(B), filled, grown);
      values = gather_filled(values, identity_order(B), filled, grown);
    }
  }
  const int64_t stride = keys.size(1) * C;  // floats from one batch row to the next
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(keys.data() + b * stride + filled * C, k.data() + b * T * C, sizeof(float) * T * C);
    std::memcpy(values.data() + b * stride + filled * C, v.data() + b * T * C, sizeof(float) * T * C);
  }
  filled += T;
}

void AttentionCache::reorder(const std::vector<int64_t>& order) {
  if (!empty() && !shared_source) {
    for (int64_t i : order)
      if (i < 0 || i >= batch())
        fail("AttentionCache::reorder: index ", i, " is outside the batch of ", batch(), " rows");
    keys = gather_filled(keys, order, filled, keys.size(1));
    values = gather_filled(values, order, filled, values.size(1));
    return;
  }
  // rows' = rows ∘ order. Before the first step the batch size is not known yet: the indices
  // are checked against encoder_out when the cache is filled.
  const int64_t rows_now = rows.empty() ? (empty() ? -1 : batch()) : static_cast<int64_t>(rows.size());
  std::vector<int64_t> composed(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0 || (rows_now >= 0 && order[i] >= rows_now))
      fail("AttentionCache::reorder: index ", order[i], " is outside the batch of ", rows_now, " rows");
    composed[i] = rows.empty() ? order[i] : rows[order[i]];
  }
  rows = std::move(composed);
}

void AttentionCache::trim(int64_t length) {
  if (empty()) return;
  if (shared_source) fail("AttentionCache::trim: an encoder-decoder cache holds the whole source");
  if (length < 0 || length > filled)
    fail("AttentionCache::trim: length ", length, " is outside [0, ", filled, "]");
  if (length == 0) clear();
  else filled = length;  // later steps overwrite the positions behind
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

Tensor MultiheadAttention::project_query(const Tensor& x) const {
  // The scale multiplies the projected query bias included, as fairseq does (spec §5.1).
  return q_proj.forward(x, 1.0f / std::sqrt(static_cast<float>(head_dim)));  // (B, T, C)
}

Tensor MultiheadAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& key_padding_mask, bool causal) const {
  return out_proj.forward(attention(q, k, v, num_heads, key_padding_mask, causal, kMaskedScore,
                                    attention_dropout, is_training()));
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
  return attend(project_query(query), k_proj.forward(key), v_proj.forward(value), key_padding_mask,
                causal);
}

Tensor MultiheadAttention::step_self_attention(const Tensor& x, AttentionCache& cache) const {
  NoGrad no_grad;
  check_input("step input", x);
  if (!cache.empty() && (cache.batch() != x.size(0) || cache.shared_source))
    fail("MultiheadAttention: self-attention cache holds ", cache.keys.describe(),
         " (filled by encoder attention: ", cache.shared_source, "), which does not fit step input ",
         x.describe(), "; was it filled by encoder attention or not reordered?");
  if (cache.empty()) cache.rows.clear();  // reorders before the first step change nothing here
  cache.append(k_proj.forward(x), v_proj.forward(x));  // (B, T', C) each
  if (is_training() && attention_dropout > 0.0f) {
    // Dropout on the probabilities goes through the general path.
    return attend(project_query(x), narrow(cache.keys, 1, 0, cache.filled),
                  narrow(cache.values, 1, 0, cache.filled), Tensor(), /*causal=*/true);
  }
  return attend_cache(x, cache, /*causal=*/true);
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
    cache.keys = k_proj.forward(encoder_out);    // (B0, S, C)
    cache.values = v_proj.forward(encoder_out);  // (B0, S, C)
    cache.filled = encoder_out.size(1);
    cache.key_padding_mask = encoder_padding_mask;  // (B0, S) or undefined
    cache.shared_source = true;
  } else if ((cache.rows.empty() ? cache.batch() : static_cast<int64_t>(cache.rows.size())) != N) {
    fail("MultiheadAttention: encoder-attention cache has batch ",
         cache.rows.empty() ? cache.batch() : static_cast<int64_t>(cache.rows.size()),
         " but the step input is ", x.describe(), "; reorder the cache with the beams");
  }
  if (cache.key_padding_mask.defined() &&
      cache.key_padding_mask.shape() != Shape{cache.batch(), cache.filled})
    fail("MultiheadAttention: key_padding_mask ", cache.key_padding_mask.describe(), " must be (B, S) = [",
         cache.batch(), ", ", cache.filled, "]");
  if (is_training() && attention_dropout > 0.0f) {
    // Dropout on the probabilities goes through the general path, on copied rows.
    const std::vector<int64_t>& rows = cache.rows;
    auto row_copy = [&](const Tensor& t) { return rows.empty() ? t : reorder_batch(t, rows); };
    return attend(project_query(x), row_copy(cache.keys), row_copy(cache.values),
                  row_copy(cache.key_padding_mask), false);
  }
  return attend_cache(x, cache, /*causal=*/false);
}

Tensor MultiheadAttention::attend_cache(const Tensor& x, const AttentionCache& cache, bool causal) const {
  return out_proj.forward(cached_attention(project_query(x), cache.keys, cache.values, cache.filled,
                                           num_heads, cache.rows, cache.key_padding_mask, causal,
                                           kMaskedScore));
}

}  // namespace payless
