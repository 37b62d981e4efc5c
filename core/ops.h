// Every differentiable op in payless, with its shapes and formula.
//
// Each op lives in core/ops/<family>.cpp with its backward closure right below its forward code
// (see core/autograd.h for the accumulate-only contract). Ops check their arguments and throw
// payless::Error naming the op, the tensors and their shapes. Heavy loops are in core/kernels/,
// plain functions on raw pointers with a reference loop beside each fast one.
//
// Shapes use the letters of the whole code base: B batch, T target length, S source length,
// C channels, H heads, K kernel width, V vocabulary. "(..., C)" means any leading dims.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace payless {

// ---------------------------------------------------------------- matmul.cpp
// a (M, K) · b (K, N) -> (M, N); trans_a / trans_b use aᵀ / bᵀ as stored (so a is (K, M) when
// trans_a). Batched: a and b of rank 3 or 4 with equal leading dims multiply matrix by matrix;
// a batched a times a 2-D b multiplies every matrix of a by b. OpenBLAS sgemm.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// scale · (x (..., in) · weightᵀ (out, in) + bias (out)) -> (..., out). bias may be undefined.
// The scale costs nothing: it is the GEMMs' alpha and the factor the bias rows start from (the
// attention's query scaling, which as a separate op was a pass over the queries each way).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), float scale = 1.0f);

// ---------------------------------------------------------------- elementwise.cpp
// Binary ops broadcast like numpy: shapes are aligned at the right; a size-1 or missing dim
// repeats. In backward the gradient is summed over the repeated dims.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float factor);  // x · factor
Tensor add_scalar(const Tensor& x, float value);
Tensor neg(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact: x · Φ(x), Φ the standard normal CDF (erf form)
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
// (..., 2C) -> (..., C): first half is the value, second half the gate: a ⊙ σ(b).
Tensor glu(const Tensor& x);
// Where mask (broadcast to x's shape) is non-zero, the output is `value` and no gradient flows
// back to x; elsewhere it is x. The mask is data, never differentiated.
Tensor masked_fill(const Tensor& x, const Tensor& mask, float value);
// Inverted dropout: keep each element with probability 1-p and scale kept ones by 1/(1-p).
// The mask element i is uniform01(seed, stream, i) >= p, so it does not depend on threads.
// When !training or p == 0 the input is returned as is.
Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed, uint64_t stream);
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng = global_rng());

// ---------------------------------------------------------------- reduce.cpp
Tensor sum(const Tensor& x);                                     // -> scalar (rank 0)
Tensor sum(const Tensor& x, int dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int dim, bool keepdim = false);
// Largest value along dim; the gradient goes to the first position holding it.
Tensor max(const Tensor& x, int dim, bool keepdim = false);

// ---------------------------------------------------------------- softmax.cpp
Tensor softmax(const Tensor& x);      // over the last dim, max-subtracted
Tensor log_softmax(const Tensor& x);  // over the last dim, x - max - log Σ exp(x - max)

// Label-smoothed cross-entropy over logits, fused with the log-softmax (spec §7).
//   logits (N, V), targets N ids; or logits (..., V) with targets of the leading shape (B, T).
//   Rows whose target is ignore_index contribute nothing; any other target outside [0, V) is
//   an error naming the row.
//   With lp = log_softmax(logits) row-wise and ε = smoothing:
//     kPaper   (paper-era):  loss = (1-ε)·(-lp[y]) + ε/V · Σ_v (-lp[v])
//     kCurrent (fairseq now): loss = (1-ε-ε/(V-1))·(-lp[y]) + ε/(V-1) · Σ_v (-lp[v])
//   Both equal -lp[y] when ε = 0.
enum class SmoothingVariant { kPaper, kCurrent };
struct CrossEntropyResult {
  Tensor loss;     // scalar: the smoothed loss summed over non-ignored rows (differentiable)
  Tensor nll;      // scalar: Σ -lp[y] over the same rows, for perplexity (no gradient)
  int64_t tokens;  // number of non-ignored rows
};
CrossEntropyResult cross_entropy(const Tensor& logits, const IdTensor& targets,
                                 int32_t ignore_index = -1, float smoothing = 0.0f,
                                 SmoothingVariant variant = SmoothingVariant::kPaper);

// ---------------------------------------------------------------- norm.cpp
// Over the last dim C: (x - mean) / sqrt(var + eps) · gamma + beta, biased variance.
// gamma, beta (C); either may be undefined (then 1 and 0).
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps = 1e-5f);

// ---------------------------------------------------------------- shape.cpp
// Same values, new shape (a view: no copy). One dim may be -1 (inferred).
Tensor reshape(const Tensor& x, const std::vector<int64_t>& shape);
Tensor view(const Tensor& x, const std::vector<int64_t>& shape);  // same as reshape
Tensor transpose(const Tensor& x, int dim0, int dim1);           // copies
Tensor permute(const Tensor& x, const std::vector<int>& order);  // copies; out dim i = x dim order[i]
// Elements [start, start+length) along dim: a view when every dim before `dim` has size 1
// (always for dim 0), a copy otherwise.
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length);
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end);  // narrow(x, dim, start, end-start)
Tensor concat(const std::vector<Tensor>& xs, int dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);  // equal parts
// x broadcast (numpy rules) to a larger shape; backward sums over the repeated dims.
Tensor expand(const Tensor& x, const Shape& shape);
// weight (V, C) gathered at ids (any shape) -> (ids..., C). Backward scatter-adds into weight,
// except into row padding_idx (pass -1 for none), which gets no gradient.
Tensor embedding(const Tensor& weight, const IdTensor& ids, int32_t padding_idx = -1);

// ---------------------------------------------------------------- conv.cpp
// The paper's depth-wise convolutions (spec §1.5, §2.1) on x (B, T, C). H heads share kernels:
// channel c uses kernel row h(c) = c / (C/H), so head h owns the contiguous channels
// [h·C/H, (h+1)·C/H). P = padding_l in [0, K-1]: K-1 causal (decoder), K/2 centred (encoder).
// Inputs outside [0, T) count as 0, and nothing is renormalised at the edges. The weights come in
// already normalised (softmax over K, then DropConnect): the layers compose those ops.
//
// LightweightConv, weight (H, K) shared by every position:
//   y[b,t,c] = Σ_k weight[h(c), k] · x[b, t+k-P, c]                       -> (B, T, C)
Tensor lightweight_conv(const Tensor& x, const Tensor& weight, int64_t padding_l);
// DynamicConv, weights (B, T, H, K): one kernel per position:
//   y[b,t,c] = Σ_k weights[b, t, h(c), k] · x[b, t+k-P, c]                -> (B, T, C)
Tensor dynamic_conv(const Tensor& x, const Tensor& weights, int64_t padding_l);
// One causal decoding step (spec §1.7, §2.5). window (N, j, C) holds the last j <= K inputs,
// oldest first, the newest last; they meet the LAST j taps (the softmax was over all K):
//   y[n,0,c] = Σ_{i<j} weight[h(c), K-j+i] · window[n, i, c]               -> (N, 1, C)
// which equals the newest row of the full causal forward. Inference only: throws if a gradient
// would be needed (call under NoGrad). weights for dynamic_conv_step are (N, H, K).
Tensor lightweight_conv_step(const Tensor& window, const Tensor& weight);
Tensor dynamic_conv_step(const Tensor& window, const Tensor& weights);

// ---------------------------------------------------------------- attention.cpp
// Multi-head scaled dot-product attention with its masks and dropout, fused (the math, per head h
// in channels [h·D, (h+1)·D), D = C / heads, with the scale already in q):
//   s = q_h·k_hᵀ (B, T, S), hidden pairs set to masked_score: key j of a row where
//       key_padding_mask (B, S) is nonzero, and with causal, keys j > t + S − T
//   out_h = dropout(softmax(s), p) · v_h,  out = the heads side by side       -> (B, T, C)
// q (B, T, C); k, v (B, S, C). A query that sees no key gets the plain average of the values.
// The dropout mask is the one dropout(x, p, training, seed, stream) draws for a (B, H, T, S) x.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                 const Tensor& key_padding_mask, bool causal, float masked_score, float dropout_p,
                 bool training, uint64_t seed, uint64_t stream);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                 const Tensor& key_padding_mask, bool causal, float masked_score, float dropout_p,
                 bool training, Rng& rng = global_rng());
// One decoding step's attention over a cache, the same math without dropout: q (N, T', C), the
// step's queries, scaled; keys, values (B0, capacity, C), positions [0, length) filled; hypothesis
// n reads cache row rows[n] (rows empty: row n, B0 = N); key_padding_mask (B0, length) or
// undefined; causal: the queries are the last T' of the length positions. -> (N, T', C).
// Inference only: throws if a gradient would be needed (call under NoGrad).
Tensor cached_attention(const Tensor& q, const Tensor& keys, const Tensor& values, int64_t length,
                        int64_t heads, const std::vector<int64_t>& rows,
                        const Tensor& key_padding_mask, bool causal, float masked_score);

}  // namespace payless
