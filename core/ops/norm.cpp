// layer_norm over the last dim, with its fused backward.
//
// The loops and the derivation of the backward formula are in core/kernels/norm.{h,cpp}; this
// file checks shapes, keeps each row's mean and rstd for backward and records the closure
// (accumulate-only, core/autograd.h). The LayerNorm module (parameters, eps) is in layers/.
#include <vector>

#include "core/autograd.h"
#include "core/kernels/norm.h"
#include "core/ops.h"

namespace payless {

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  if (x.rank() == 0 || x.shape().last() == 0)
    fail("layer_norm: ", x.describe(), " needs a non-empty last dim to normalise over");
  const int64_t C = x.shape().last(), rows = x.shape().outer(-1);
  for (const Tensor* p : {&gamma, &beta})
    if (p->defined() && (p->rank() != 1 || p->size(0) != C))
      fail("layer_norm: ", p == &gamma ? "gamma " : "beta ", p->describe(), " must be (", C,
           ") to match the last dim of x ", x.describe());
  if (!(eps >= 0.0f)) fail("layer_norm: eps must be >= 0, got ", eps);

  Tensor y = Tensor::empty(x.shape());  // (..., C)
  std::vector<float> mean(rows), rstd(rows);
  kernels::layer_norm_forward(x.data(), gamma.defined() ? gamma.data() : nullptr,
                              beta.defined() ? beta.data() : nullptr, y.data(), mean.data(),
                              rstd.data(), rows, C, eps);

  if (needs_grad(x, gamma, beta)) {
    record(y, [x, gamma, beta, mean = std::move(mean), rstd = std::move(rstd), rows,
               C](const Tensor& dy) mutable {
      auto wanted = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
      const Tensor::GradTarget gx = wanted(x) ? x.grad_target() : Tensor::GradTarget{nullptr, false};
      kernels::layer_norm_backward(x.data(), gamma.defined() ? gamma.data() : nullptr,
                                   mean.data(), rstd.data(), dy.data(), gx.data,
                                   wanted(gamma) ? gamma.grad_ptr() : nullptr,
                                   wanted(beta) ? beta.grad_ptr() : nullptr, rows, C, gx.fresh);
    });
  }
  return y;
}

}  // namespace payless
