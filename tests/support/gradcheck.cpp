// See gradcheck.h.
#include "tests/support/gradcheck.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"

namespace payless::testing {
namespace {

double project(const Tensor& y, const Tensor& r) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += double(y.data()[i]) * r.data()[i];
  return s;
}

// L(inputs) in double, with nothing recorded.
double objective(const GradFn& f, const std::vector<Tensor>& inputs, const Tensor& r1,
                 const Tensor& r2) {
  NoGrad no_grad;
  return project(f(inputs), r1) + project(f(inputs), r2);
}

}  // namespace

Tensor random_input(const Shape& shape, uint64_t seed, float low, float high) {
  Tensor t = Tensor::empty(shape);
  Rng rng(seed);
  rng.uniform_(t, low, high);
  t.set_requires_grad(true);
  return t;
}

void check_gradients(const std::string& name, std::vector<Tensor> inputs, const GradFn& f,
                     const GradCheckOptions& options) {
  INFO("gradient check: " << name);
  for (Tensor& t : inputs) t.zero_grad();
  clear_tape();

  // Analytic: L = Σ f(x)·r1 + Σ f(x)·r2, built from ops so backward() runs the real closures.
  Tensor y1 = f(inputs);
  Tensor y2 = f(inputs);
  Tensor r1 = Tensor::empty(y1.shape()), r2 = Tensor::empty(y2.shape());
  Rng rng(options.seed);
  rng.uniform_(r1, -1.0f, 1.0f);
  rng.uniform_(r2, -1.0f, 1.0f);
  Tensor loss = add(sum(mul(y1, r1)), sum(mul(y2, r2)));
  backward(loss);
  REQUIRE(tape_size() == 0);

  for (size_t which = 0; which < inputs.size(); ++which) {
    Tensor& x = inputs[which];
    if (!x.requires_grad()) continue;
    INFO("input " << which << " " << x.describe());
    REQUIRE(x.has_grad());
    const std::vector<float> analytic = x.grad().to_vector();
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / options.max_elements);
    for (int64_t i = 0; i < n; i += stride) {
      float saved = x.data()[i];
      x.data()[i] = static_cast<float>(saved + options.step);
      double plus = objective(f, inputs, r1, r2);
      x.data()[i] = static_cast<float>(saved - options.step);
      double minus = objective(f, inputs, r1, r2);
      x.data()[i] = saved;
      double numeric = (plus - minus) / (2.0 * options.step);
      double error = std::fabs(analytic[i] - numeric) / std::max(1.0, std::fabs(numeric));
      INFO("element " << i << ": analytic " << analytic[i] << ", numeric " << numeric);
      CHECK(error <= options.tolerance);
    }
  }
}

}  // namespace payless::testing
