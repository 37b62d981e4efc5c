// attention(): multi-head attention with masks and dropout as one op, and cached_attention(), a
// decoding step's attention over a key/value cache. The loops and the backward's
// derivation are in core/kernels/attention.{h,cpp}; this file checks shapes, draws the dropout
// stream and records the backward closure (accumulate-only, core/autograd.h). The layer that
// projects q, k, v and applies the output projection is layers/attention.h.
#include <cstring>
#include <string>

#include "core/autograd.h"
#include "core/kernels/attention.h"
#include "core/ops.h"

namespace payless {

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                 const Tensor& key_padding_mask, bool causal, float masked_score, float dropout_p,
                 bool training, uint64_t seed, uint64_t stream) {
  if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3 || k.shape() != v.shape() ||
      k.size(0) != q.size(0) || k.size(2) != q.size(2))
    fail("attention: q ", q.describe(), ", k ", k.describe(), " and v ", v.describe(),
         " must be (B, T, C), (B, S, C), (B, S, C)");
  const int64_t B = q.size(0), T = q.size(1), S = k.size(1), C = q.size(2);
  if (heads <= 0 || C % heads != 0)
    fail("attention: ", C, " channels of q ", q.describe(), " do not split into ", heads, " heads");
  if (key_padding_mask.defined() && key_padding_mask.shape() != Shape{B, S})
    fail("attention: key_padding_mask ", key_padding_mask.describe(), " must be (B, S) = [", B, ", ",
         S, "]");
  if (causal && S < T)
    fail("attention: causal attention needs at least as many keys as queries, got q ", q.describe(),
         " and k ", k.describe());
  if (!(dropout_p >= 0.0f && dropout_p < 1.0f))
    fail("attention: dropout probability must be in [0, 1), got ", dropout_p);
  if (key_padding_mask.defined() && key_padding_mask.requires_grad())
    fail("attention: key_padding_mask ", key_padding_mask.describe(), " is a mask, not a parameter");

  kernels::AttentionProblem a;
  a.batch = B;
  a.queries = T;
  a.keys = S;
  a.heads = heads;
  a.head_dim = C / heads;
  a.causal = causal;
  a.masked_score = masked_score;
  if (training && dropout_p > 0.0f) {
    a.dropout = true;
    a.dropout_mask = dropout_mask(dropout_p, seed, stream);
  }
  Tensor probs = Tensor::empty({B, heads, T, S});  // softmax before dropout, for the backward
  Tensor out = Tensor::empty({B, T, C});
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.key_padding_mask = key_padding_mask.defined() ? key_padding_mask.data() : nullptr;
  kernels::attention_forward(a, probs.data(), out.data());

  if (needs_grad(q, k, v)) {
    record(out, [q, k, v, key_padding_mask, probs, a](const Tensor& dout) mutable {
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.key_padding_mask = key_padding_mask.defined() ? key_padding_mask.data() : nullptr;
      // The kernel adds into the gradients: a fresh buffer is zeroed first. If q and k (or v) are
      // one tensor, the second grad_target returns the buffer the first made, and both add to it.
      auto target = [](const Tensor& x) -> float* {
        if (!x.requires_grad()) return nullptr;
        const Tensor::GradTarget g = x.grad_target();
        if (g.fresh) std::memset(g.data, 0, sizeof(float) * x.numel());
        return g.data;
      };
      float* dq = target(q);
      float* dk = target(k);
      float* dv = target(v);
      kernels::attention_backward(a, probs.data(), dout.data(), dq, dk, dv);
    });
  }
  return out;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                 const Tensor& key_padding_mask, bool causal, float masked_score, float dropout_p,
                 bool training, Rng& rng) {
  const bool drop = training && dropout_p > 0.0f;
  return attention(q, k, v, heads, key_padding_mask, causal, masked_score, dropout_p, training,
                   drop ? rng.seed() : 0, drop ? rng.take_stream() : 0);
}

Tensor cached_attention(const Tensor& q, const Tensor& keys, const Tensor& values, int64_t length,
                        int64_t heads, const std::vector<int64_t>& rows,
                        const Tensor& key_padding_mask, bool causal, float masked_score) {
  if (q.rank() != 3 || keys.rank() != 3 || keys.shape() != values.shape() || keys.size(2) != q.size(2))
    fail("cached_attention: q ", q.describe(), ", keys ", keys.describe(), " and values ",
         values.describe(), " must be (N, T, C), (B0, capacity, C), (B0, capacity, C)");
  const int64_t N = q.size(0), T = q.size(1), C = q.size(2), B0 = keys.size(0);
  if (heads <= 0 || C % heads != 0)
    fail("cached_attention: ", C, " channels of q ", q.describe(), " do not split into ", heads, " heads");
  if (length < 1 || length > keys.size(1) || (causal && length < T))
    fail("cached_attention: ", length, " filled positions of keys ", keys.describe(), " for ", T,
         " queries (causal: ", causal, ")");
  if (rows.empty() ? B0 != N : static_cast<int64_t>(rows.size()) != N)
    fail("cached_attention: q ", q.describe(), " has ", N, " rows but the cache ", keys.describe(),
         rows.empty() ? std::string(" holds another number") : " is read through " + std::to_string(rows.size()));
  for (int64_t r : rows)
    if (r < 0 || r >= B0) fail("cached_attention: row ", r, " is outside the cache ", keys.describe());
  if (key_padding_mask.defined() && key_padding_mask.shape() != Shape{B0, length})
    fail("cached_attention: key_padding_mask ", key_padding_mask.describe(), " must be (B0, length) = [",
         B0, ", ", length, "]");
  if (needs_grad(q, keys, values))
    fail("cached_attention: inference only (decoding steps), but a gradient is required; call it under NoGrad");
  Tensor out = Tensor::empty({N, T, C});
  kernels::CachedAttention a;
  a.rows = N;
  a.queries = T;
  a.heads = heads;
  a.head_dim = C / heads;
  a.length = length;
  a.q = q.data();
  a.keys = keys.data();
  a.values = values.data();
  a.cache_stride = keys.size(1) * C;
  a.row_of = rows.empty() ? nullptr : rows.data();
  if (key_padding_mask.defined()) {
    a.mask = key_padding_mask.data();
    a.mask_stride = length;
  }
  a.causal = causal;
  a.out = out.data();
  kernels::attend_cached(a, masked_score);
  return out;
}

}  // namespace payless
