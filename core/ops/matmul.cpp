// Matrix products: matmul (2-D, batched, batched × 2-D, with transposes) and linear.
//
// Forward and backward are all calls to kernels::gemm (OpenBLAS sgemm, core/kernels/matmul.h).
// The backward passes use beta = 1, so sgemm adds straight into the gradient buffers: no
// temporaries, and the accumulate-only contract of core/autograd.h for free; into a gradient
// buffer that does not exist yet (Tensor::grad_target) they write with beta = 0 instead. This
// file does no threading of its own; OpenBLAS parallelises each call. Declarations: core/ops.h.
#include <algorithm>
#include <string>

#include "core/autograd.h"
#include "core/kernels/matmul.h"
#include "core/ops.h"

namespace payless {
namespace {

// One matmul seen as `batch` independent products C_i (M, N) = op(A_i) (M, K) · op(B_i) (K, N).
// b_stride is 0 when one 2-D b multiplies every matrix of a batched a.
struct MatmulPlan {
  int64_t batch, M, N, K;
  int64_t a_stride, b_stride;  // floats between consecutive A_i / B_i
  bool trans_a, trans_b;
  int64_t lda() const { return trans_a ? M : K; }  // row length of A_i as stored
  int64_t ldb() const { return trans_b ? K : N; }  // row length of B_i as stored
};

std::string flags(bool trans_a, bool trans_b) {
  if (!trans_a && !trans_b) return "";
  return std::string(" (") + (trans_a ? "trans_a" : "") + (trans_a && trans_b ? ", " : "") +
         (trans_b ? "trans_b" : "") + ")";
}

MatmulPlan plan_matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                       Shape& out_shape) {
  const int ra = a.rank(), rb = b.rank();
  auto where = [&] { return a.describe() + " and " + b.describe() + flags(trans_a, trans_b); };
  if (ra < 2 || rb < 2)
    fail("matmul: both operands must have at least 2 dims, got ", where());
  if (rb > 2 && rb != ra)
    fail("matmul: a batched b needs a of the same rank, got ", where());
  std::vector<int64_t> dims;
  int64_t batch = 1;
  for (int i = 0; i < ra - 2; ++i) {
    if (rb > 2 && a.size(i) != b.size(i))
      fail("matmul: batch dims differ (dim ", i, "): ", where());
    batch *= a.size(i);
    dims.push_back(a.size(i));
  }
  MatmulPlan p;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.batch = batch;
  p.M = trans_a ? a.size(-1) : a.size(-2);
  p.K = trans_a ? a.size(-2) : a.size(-1);
  const int64_t kb = trans_b ? b.size(-1) : b.size(-2);
  p.N = trans_b ? b.size(-2) : b.size(-1);
  if (p.K != kb)
    fail("matmul: inner dims differ (", p.K, " vs ", kb, "): ", where());
  p.a_stride = p.M * p.K;
  p.b_stride = rb > 2 ? p.K * p.N : 0;
  dims.push_back(p.M);
  dims.push_back(p.N);
  out_shape = Shape(dims);
  // A batched a (not transposed) times one 2-D b is a single taller product: (batch·M, K)·(K, N),
  // one GEMM that OpenBLAS can split well instead of `batch` small ones.
  if (p.b_stride == 0 && !trans_a && batch > 1) {
    p.M *= batch;
    p.batch = 1;
    p.a_stride = p.M * p.K;
  }
  return p;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Shape out_shape;
  const MatmulPlan p = plan_matmul(a, b, trans_a, trans_b, out_shape);
  Tensor c = Tensor::empty(out_shape);  // (..., M, N)
  const int64_t c_stride = p.M * p.N;
  for (int64_t i = 0; i < p.batch; ++i)
    kernels::gemm(p.trans_a, p.trans_b, p.M, p.N, p.K, 1.0f, a.data() + i * p.a_stride, p.lda(),
                  b.data() + i * p.b_stride, p.ldb(), 0.0f, c.data() + i * c_stride, p.N);

  if (needs_grad(a, b)) {
    record(c, [a, b, p, c_stride](const Tensor& dc) mutable {
      // C = op(A)·op(B)  =>  d op(A) = dC·op(B)ᵀ (M, K),  d op(B) = op(A)ᵀ·dC (K, N).
      // When A is stored transposed its gradient is the transpose, dAᵀ = op(B)·dCᵀ (K, M); the
      // same for B: dBᵀ = dCᵀ·op(A) (N, K). op(B)ᵀ as stored is B read with the opposite flag.
      const float *pa = a.data(), *pb = b.data(), *g = dc.data();
      const int64_t M = p.M, N = p.N, K = p.K;
      // A fresh gradient buffer is written (beta = 0) rather than added into (grad_target).
      if (a.requires_grad()) {
        const Tensor::GradTarget ga = a.grad_target();
        for (int64_t i = 0; i < p.batch; ++i) {
          const float *bi = pb + i * p.b_stride, *gi = g + i * c_stride;
          float* gai = ga.data + i * p.a_stride;
          if (!p.trans_a)
            kernels::gemm(false, !p.trans_b, M, K, N, 1.0f, gi, N, bi, p.ldb(), ga.beta(), gai, K);
          else
            kernels::gemm(p.trans_b, true, K, M, N, 1.0f, bi, p.ldb(), gi, N, ga.beta(), gai, M);
        }
      }
      if (b.requires_grad()) {
        const Tensor::GradTarget gb = b.grad_target();
        // With a shared 2-D b (b_stride 0) every batch adds into the same dB, in order; only the
        // first writes a fresh buffer.
        for (int64_t i = 0; i < p.batch; ++i) {
          const float *ai = pa + i * p.a_stride, *gi = g + i * c_stride;
          float* gbi = gb.data + i * p.b_stride;
          const float beta = gb.fresh && (i == 0 || p.b_stride != 0) ? 0.0f : 1.0f;
          if (!p.trans_b)
            kernels::gemm(!p.trans_a, false, K, N, M, 1.0f, ai, p.lda(), gi, N, beta, gbi, N);
          else
            kernels::gemm(true, p.trans_a, N, K, M, 1.0f, gi, N, ai, p.lda(), beta, gbi, K);
        }
      }
    });
  }
  return c;
}

// y (R, out) = x (R, in) · Wᵀ + bias, with R all leading dims of x flattened (x is contiguous).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, float scale) {
  if (weight.rank() != 2)
    fail("linear: weight ", weight.describe(), " must be 2-D (out, in); x is ", x.describe());
  if (x.rank() < 1 || x.size(-1) != weight.size(1))
    fail("linear: the last dim of x ", x.describe(), " must equal in = dim 1 of weight ",
         weight.describe());
  const int64_t in = weight.size(1), out = weight.size(0), rows = x.shape().outer(-1);
  if (bias.defined() && (bias.rank() != 1 || bias.size(0) != out))
    fail("linear: bias ", bias.describe(), " must be (", out, ") to match weight ",
         weight.describe());
  std::vector<int64_t> dims = x.shape().to_vector();
  dims.back() = out;
  Tensor y = Tensor::empty(Shape(dims));  // (..., out)
  float* py = y.data();
  float beta = 0.0f;
  if (bias.defined()) {
    // Start every row from the (scaled) bias and let sgemm add scale·x·Wᵀ to it (beta = 1):
    // one pass over y.
    const float* pbias = bias.data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) py[r * out + o] = scale * pbias[o];
    beta = 1.0f;
  }
  kernels::gemm(false, true, rows, out, in, scale, x.data(), in, weight.data(), in, beta, py, out);

  if (needs_grad(x, weight, bias)) {
    record(y, [x, weight, bias, rows, in, out, scale](const Tensor& dy) mutable {
      const float* g = dy.data();  // (R, out)
      // dx (R, in) += scale · dy (R, out) · W (out, in); a fresh buffer is written (beta = 0).
      if (x.requires_grad()) {
        const Tensor::GradTarget gx = x.grad_target();
        kernels::gemm(false, false, rows, in, out, scale, g, out, weight.data(), in, gx.beta(),
                      gx.data, in);
      }
      // dW (out, in) += scale · dyᵀ (out, R) · x (R, in): every position of every batch in one
      // GEMM.
      if (weight.requires_grad()) {
        const Tensor::GradTarget gw = weight.grad_target();
        kernels::gemm(true, false, out, in, rows, scale, g, out, x.data(), in, gw.beta(), gw.data,
                      in);
      }
      // dbias (out) += scale · Σ_rows dy: rows in order, so the sum does not depend on threads.
      if (bias.defined() && bias.requires_grad()) {
        const Tensor::GradTarget gbias = bias.grad_target();
        if (gbias.fresh) std::fill_n(gbias.data, out, 0.0f);  // `out` floats: nothing to save
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < out; ++o) gbias.data[o] += scale * g[r * out + o];
      }
    });
  }
  return y;
}

}  // namespace payless
