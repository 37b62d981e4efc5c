// Elementwise ops: binary arithmetic with broadcasting, the activations, GLU, masked_fill and
// dropout. Each op's backward closure stands right below its forward (contract: accumulate).
// Declarations and formulas: core/ops.h. Loops: core/kernels/elementwise.h.
#include <cmath>

#include "core/autograd.h"
#include "core/kernels/elementwise.h"
#include "core/ops.h"

namespace payless {
namespace {

using kernels::BroadcastPlan;

// Aligns two shapes at the right (numpy rules) and returns the output shape, or fails naming the
// op and both tensors.
Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  const Shape &sa = a.shape(), &sb = b.shape();
  int rank = std::max(sa.rank(), sb.rank());
  std::vector<int64_t> out(rank);
  for (int i = 0; i < rank; ++i) {
    int ia = sa.rank() - rank + i, ib = sb.rank() - rank + i;
    int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
    if (da != db && da != 1 && db != 1)
      fail(op, ": shapes do not broadcast: ", a.describe(), " and ", b.describe());
    out[i] = da == 1 ? db : da;
  }
  return Shape(out);
}

// Strides (in elements) of `s` seen inside `out`, 0 along repeated dims; all padded to 4 dims.
void broadcast_strides(const Shape& s, const Shape& out, int64_t strides[4]) {
  int64_t stride = 1;
  for (int i = 3; i >= 0; --i) {
    int is = s.rank() - 4 + i, io = out.rank() - 4 + i;
    int64_t d = is >= 0 ? s[is] : 1, dout = io >= 0 ? out[io] : 1;
    strides[i] = (d == 1 && dout != 1) ? 0 : stride;
    stride *= d;
  }
}

BroadcastPlan make_plan(const Shape& sa, const Shape& sb, const Shape& out) {
  BroadcastPlan p{};
  for (int i = 0; i < 4; ++i) {
    int io = out.rank() - 4 + i;
    p.out_dims[i] = io >= 0 ? out[io] : 1;
  }
  broadcast_strides(sa, out, p.a_strides);
  broadcast_strides(sb, out, p.b_strides);
  return p;
}

// The four arithmetic ops share everything but their formulas: forward f(a, b) and the partial
// derivatives df/da, df/db (each as a function of a, b).
template <typename F, typename DA, typename DB>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f, DA dfda, DB dfdb) {
  Shape out_shape = broadcast_shape(op, a, b);
  Tensor out = Tensor::empty(out_shape);
  const bool same = a.shape() == b.shape();
  if (same) {
    kernels::map2(a.data(), b.data(), out.data(), out.numel(), f);
  } else {
    BroadcastPlan plan = make_plan(a.shape(), b.shape(), out_shape);
    const float *pa = a.data(), *pb = b.data();
    float* po = out.data();
    kernels::for_each_broadcast(plan, [&](int64_t o, int64_t ia, int64_t ib) { po[o] = f(pa[ia], pb[ib]); });
  }
  if (needs_grad(a, b)) {
    record(out, [a, b, same, f, dfda, dfdb](const Tensor& dy) mutable {
      const float *pa = a.data(), *pb = b.data(), *g = dy.data();
      if (same) {
        // b's target is taken after a's gradient is written: in add(x, x) the second must add.
        if (a.requires_grad()) {
          const Tensor::GradTarget ga = a.grad_target();
          kernels::write_or_accumulate(ga.data, ga.fresh, a.numel(),
                                       [&](int64_t i) { return g[i] * dfda(pa[i], pb[i]); });
        }
        if (b.requires_grad()) {
          const Tensor::GradTarget gb = b.grad_target();
          kernels::write_or_accumulate(gb.data, gb.fresh, b.numel(),
                                       [&](int64_t i) { return g[i] * dfdb(pa[i], pb[i]); });
        }
        return;
      }
      float* ga = a.requires_grad() ? a.grad_ptr() : nullptr;
      float* gb = b.requires_grad() ? b.grad_ptr() : nullptr;
      BroadcastPlan plan = make_plan(a.shape(), b.shape(), dy.shape());
      kernels::for_each_broadcast(plan, [&](int64_t o, int64_t ia, int64_t ib) {
        if (ga) ga[ia] += g[o] * dfda(pa[ia], pb[ib]);
        if (gb) gb[ib] += g[o] * dfdb(pa[ia], pb[ib]);
      });
    });
  }
  return out;
}

// One-input ops: forward f(x) and the derivative df/dx given x and the output y (whichever is
// cheaper to use: sigmoid' = y(1-y), exp' = y).
template <typename F, typename D>
Tensor unary(const Tensor& x, F f, D dfdx) {
  Tensor y = Tensor::empty(x.shape());
  kernels::map(x.data(), y.data(), x.numel(), f);
  if (needs_grad(x)) {
    record(y, [x, y, dfdx](const Tensor& dy) mutable {
      const float *px = x.data(), *py = y.data(), *g = dy.data();
      const Tensor::GradTarget gx = x.grad_target();
      kernels::write_or_accumulate(gx.data, gx.fresh, x.numel(),
                                   [&](int64_t i) { return g[i] * dfdx(px[i], py[i]); });
    });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary("add", a, b, [](float u, float v) { return u + v; },
                [](float, float) { return 1.0f; }, [](float, float) { return 1.0f; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return binary("sub", a, b, [](float u, float v) { return u - v; },
                [](float, float) { return 1.0f; }, [](float, float) { return -1.0f; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return binary("mul", a, b, [](float u, float v) { return u * v; },
                [](float, float v) { return v; }, [](float u, float) { return u; });
}

// d(u/v)/du = 1/v, d(u/v)/dv = -u/v².
Tensor div(const Tensor& a, const Tensor& b) {
  return binary("div", a, b, [](float u, float v) { return u / v; },
                [](float, float v) { return 1.0f / v; }, [](float u, float v) { return -u / (v * v); });
}

Tensor scale(const Tensor& x, float factor) {
  return unary(x, [factor](float v) { return v * factor; }, [factor](float, float) { return factor; });
}

Tensor add_scalar(const Tensor& x, float value) {
  return unary(x, [value](float v) { return v + value; }, [](float, float) { return 1.0f; });
}

Tensor neg(const Tensor& x) {
  return unary(x, [](float v) { return -v; }, [](float, float) { return -1.0f; });
}

Tensor relu(const Tensor& x) {
  return unary(x, [](float v) { return v > 0.0f ? v : 0.0f; },
               [](float v, float) { return v > 0.0f ? 1.0f : 0.0f; });
}

// gelu(x) = x·Φ(x), Φ(x) = (1 + erf(x/√2))/2;  gelu'(x) = Φ(x) + x·φ(x), φ the normal density.
Tensor gelu(const Tensor& x) {
  return unary(
      x, [](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678f)); },
      [](float v, float) {
        float cdf = 0.5f * (1.0f + std::erf(v * 0.70710678f));
        float pdf = 0.39894228f * std::exp(-0.5f * v * v);
        return cdf + v * pdf;
      });
}

Tensor sigmoid(const Tensor& x) {
  return unary(x, [](float v) { return 1.0f / (1.0f + std::exp(-v)); },
               [](float, float y) { return y * (1.0f - y); });
}

Tensor tanh(const Tensor& x) {
  return unary(x, [](float v) { return std::tanh(v); }, [](float, float y) { return 1.0f - y * y; });
}

Tensor exp(const Tensor& x) {
  return unary(x, [](float v) { return std::exp(v); }, [](float, float y) { return y; });
}

Tensor log(const Tensor& x) {
  return unary(x, [](float v) { return std::log(v); }, [](float v, float) { return 1.0f / v; });
}

Tensor sqrt(const Tensor& x) {
  return unary(x, [](float v) { return std::sqrt(v); }, [](float, float y) { return 0.5f / y; });
}

// y = a ⊙ σ(b) with a = x[..., :C], b = x[..., C:].
// dy/da = σ(b);  dy/db = a·σ(b)·(1 − σ(b)).
Tensor glu(const Tensor& x) {
  const int64_t two_c = x.shape().last();
  if (x.rank() == 0 || two_c % 2 != 0)
    fail("glu: the last dim of ", x.describe(), " must be even (value half, gate half)");
  const int64_t c = two_c / 2, rows = x.numel() / two_c;
  std::vector<int64_t> out_dims = x.shape().to_vector();
  out_dims.back() = c;
  Tensor y = Tensor::empty(Shape(out_dims));
  const float* px = x.data();
  float* py = y.data();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) {
      float value = px[r * two_c + j], gate = px[r * two_c + c + j];
      py[r * c + j] = value / (1.0f + std::exp(-gate));
    }
  if (needs_grad(x)) {
    record(y, [x, rows, c](const Tensor& dy) mutable {
      const float *px = x.data(), *g = dy.data();
      const Tensor::GradTarget target = x.grad_target();
      float* gx = target.data;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < c; ++j) {
          float value = px[r * 2 * c + j];
          float s = 1.0f / (1.0f + std::exp(-px[r * 2 * c + c + j]));
          float* gv = gx + r * 2 * c + j;
          float* gg = gv + c;
          // Every element of x is written once: = into a fresh buffer (never read), else +=.
          *gv = (target.fresh ? 0.0f : *gv) + g[r * c + j] * s;
          *gg = (target.fresh ? 0.0f : *gg) + g[r * c + j] * value * s * (1.0f - s);
        }
    });
  }
  return y;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, float value) {
  if (broadcast_shape("masked_fill", x, mask) != x.shape())
    fail("masked_fill: mask ", mask.describe(), " must broadcast to ", x.describe());
  Tensor y = Tensor::empty(x.shape());
  BroadcastPlan plan = make_plan(x.shape(), mask.shape(), x.shape());
  const float *px = x.data(), *pm = mask.data();
  float* py = y.data();
  kernels::for_each_broadcast(plan, [&](int64_t o, int64_t ix, int64_t im) {
    py[o] = pm[im] != 0.0f ? value : px[ix];
  });
  if (needs_grad(x)) {
    record(y, [x, mask, plan](const Tensor& dy) mutable {
      const float *g = dy.data(), *pm = mask.data();
      const Tensor::GradTarget target = x.grad_target();
      float* gx = target.data;
      // x has the output's shape (ix is o), so each element of its gradient is visited once.
      if (target.fresh)
        kernels::for_each_broadcast(plan, [&](int64_t o, int64_t ix, int64_t im) {
          gx[ix] = pm[im] == 0.0f ? g[o] : 0.0f;
        });
      else
        kernels::for_each_broadcast(plan, [&](int64_t o, int64_t ix, int64_t im) {
          if (pm[im] == 0.0f) gx[ix] += g[o];
        });
    });
  }
  return y;
}

// The mask is never stored: backward recomputes it from (seed, stream, index), which costs a
// hash per element and saves a tensor the size of x per dropout.
//
// Element i is kept when uniform01(seed, stream, i) >= p. That draw is bits·2^-24 with `bits` an
// exact 24-bit integer, so the same test is bits >= ceil(p·2^24) on the integer; with a multiply
// by 0 or 1/(1-p) instead of a branch the loops vectorise (eight 64-bit hashes per AVX-512
// instruction) and still give uniform01's masks bit for bit.
Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed, uint64_t stream) {
  if (!(p >= 0.0f && p < 1.0f)) fail("dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0f) return x;
  const DropoutMask mask = dropout_mask(p, seed, stream);
  const int64_t n = x.numel();
  Tensor y = Tensor::empty(x.shape());
  kernels::dropout_rows(x.data(), y.data(), n, mask, false);
  if (needs_grad(x)) {
    record(y, [x, mask, n](const Tensor& dy) mutable {
      const Tensor::GradTarget gx = x.grad_target();  // a fresh buffer is written, not added to
      kernels::dropout_rows(dy.data(), gx.data, n, mask, !gx.fresh);
    });
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, bool training, Rng& rng) {
  if (!training || p == 0.0f) return x;
  return dropout(x, p, training, rng.seed(), rng.take_stream());
}

}  // namespace payless
