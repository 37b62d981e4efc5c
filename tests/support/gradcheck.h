// The gradient check every op and layer goes through: one call per case.
//
//   check_gradients("glu", {randn({3, 8})}, [](const std::vector<Tensor>& in) { return glu(in[0]); });
//
// It compares the gradients that backward() accumulates with central finite differences of the
// same function. To catch a backward that assigns instead of accumulating, the function is applied
// TWICE to the same inputs and the two outputs are projected on different random weights:
//   L = Σ f(x)·r1 + Σ f(x)·r2
// so every input receives two contributions and an assigning closure loses one of them. The
// projections and the finite-difference sums are done in double to keep their rounding out of the
// comparison; the op itself runs in float, so the tolerance is that of float arithmetic.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace payless::testing {

struct GradCheckOptions {
  double step = 1e-2;        // finite-difference step (float ops need a large one)
  double tolerance = 2e-2;   // on |analytic - numeric| / max(1, |numeric|)
  int max_elements = 64;     // per input, checked elements (spread evenly) to keep tests fast
  uint64_t seed = 7;
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Fails the current Catch2 test (with the input, element, both values) on any mismatch.
void check_gradients(const std::string& name, std::vector<Tensor> inputs, const GradFn& f,
                     const GradCheckOptions& options = {});

// Random inputs for checks: uniform in [low, high) from a fixed seed, requires_grad set.
Tensor random_input(const Shape& shape, uint64_t seed, float low = -1.0f, float high = 1.0f);

}  // namespace payless::testing
