// softmax, log_softmax (over the last dim) and the fused label-smoothed cross-entropy.
//
// The row loops and their derivations are in core/kernels/softmax.{h,cpp}; this file checks
// arguments, picks the smoothing weights of spec §7 and records the backward closures
// (accumulate-only, core/autograd.h). Declarations: core/ops.h.
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/kernels/softmax.h"
#include "core/ops.h"

namespace payless {
namespace {

// Rows and row length V of x seen as (rows, V) over its last dim.
void rows_and_width(const char* op, const Tensor& x, int64_t& rows, int64_t& V) {
  if (x.rank() == 0 || x.shape().last() == 0)
    fail(op, ": ", x.describe(), " needs a non-empty last dim to normalise over");
  V = x.shape().last();
  rows = x.shape().outer(-1);
}

}  // namespace

Tensor softmax(const Tensor& x) {
  int64_t rows, V;
  rows_and_width("softmax", x, rows, V);
  Tensor y = Tensor::empty(x.shape());  // (..., V)
  kernels::softmax_rows(x.data(), y.data(), rows, V);
  if (needs_grad(x)) {
    // dx += y ⊙ (dy − Σ dy⊙y): only the output is needed, not x.
    record(y, [x, y, rows, V](const Tensor& dy) mutable {
      const Tensor::GradTarget gx = x.grad_target();
      kernels::softmax_backward_rows(y.data(), dy.data(), gx.data, rows, V, gx.fresh);
    });
  }
  return y;
}

Tensor log_softmax(const Tensor& x) {
  int64_t rows, V;
  rows_and_width("log_softmax", x, rows, V);
  Tensor y = Tensor::empty(x.shape());  // (..., V)
  kernels::log_softmax_rows(x.data(), y.data(), rows, V);
  if (needs_grad(x)) {
    // dx += dy − exp(y) ⊙ Σ dy
    record(y, [x, y, rows, V](const Tensor& dy) mutable {
      const Tensor::GradTarget gx = x.grad_target();
      kernels::log_softmax_backward_rows(y.data(), dy.data(), gx.data, rows, V, gx.fresh);
    });
  }
  return y;
}

CrossEntropyResult cross_entropy(const Tensor& logits, const IdTensor& targets,
                                 int32_t ignore_index, float smoothing, SmoothingVariant variant) {
  int64_t rows, V;
  rows_and_width("cross_entropy", logits, rows, V);
  std::vector<int64_t> lead = logits.shape().to_vector();
  lead.pop_back();
  if (targets.shape != Shape(lead))
    fail("cross_entropy: targets of shape ", targets.shape.str(), " do not match logits ",
         logits.describe(), " (expected targets of shape ", Shape(lead).str(), ")");
  if (!(smoothing >= 0.0f && smoothing < 1.0f))
    fail("cross_entropy: label smoothing must be in [0, 1), got ", smoothing);
  const bool current = variant == SmoothingVariant::kCurrent;
  if (current && smoothing > 0.0f && V < 2)
    fail("cross_entropy: the current smoothing spreads ε over the V-1 other classes; it needs "
         "V >= 2, got logits ", logits.describe());
  int64_t tokens = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t y = targets.values[r];
    if (y == ignore_index) continue;
    if (y < 0 || y >= V)
      fail("cross_entropy: target ", y, " in row ", r, " is outside the vocabulary [0, ", V,
           ") of logits ", logits.describe(), " and is not ignore_index (", ignore_index, ")");
    ++tokens;
  }

  // loss = a·(−lp[y]) + b·Σ_v(−lp[v])   (spec §7)
  //   kPaper:   a = 1 − ε,            b = ε/V
  //   kCurrent: a = 1 − ε − ε/(V−1),  b = ε/(V−1)
  kernels::SmoothingWeights w;
  const double eps = smoothing;
  if (smoothing == 0.0f) {
    w = {1.0f, 0.0f};
  } else if (current) {
    const double eps_i = eps / double(V - 1);
    w = {static_cast<float>(1.0 - eps - eps_i), static_cast<float>(eps_i)};
  } else {
    w = {static_cast<float>(1.0 - eps), static_cast<float>(eps / double(V))};
  }

  std::vector<float> row_loss(rows), row_nll(rows), lse(rows);
  kernels::cross_entropy_rows(logits.data(), targets.values.data(), rows, V, ignore_index, w,
                              row_loss.data(), row_nll.data(), lse.data());
  // Summed serially in double from the per-row values: the same bits for any thread count.
  double loss_sum = 0.0, nll_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    loss_sum += row_loss[r];
    nll_sum += row_nll[r];
  }
  CrossEntropyResult result{Tensor::scalar(static_cast<float>(loss_sum)),
                            Tensor::scalar(static_cast<float>(nll_sum)), tokens};

  if (needs_grad(logits)) {
    // Saves only lse per row (rows floats) and the ids; p is recomputed from the logits.
    record(result.loss, [logits, ids = targets.values, lse = std::move(lse), rows, V, ignore_index,
                         w](const Tensor& dy) mutable {
      const Tensor::GradTarget gl = logits.grad_target();
      kernels::cross_entropy_backward_rows(logits.data(), ids.data(), lse.data(), rows, V,
                                           ignore_index, w, dy.data()[0], gl.data, gl.fresh);
    });
  }
  return result;
}

}  // namespace payless
