// Elementwise ops: forward values against hand-computed ones, and gradients through the shared
// gradient check (each input used twice, see tests/support/gradcheck.h).
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/parallel.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;
using payless::testing::random_input;
using Inputs = std::vector<Tensor>;

TEST_CASE("binary ops broadcast trailing and leading dims", "[ops][elementwise]") {
  Tensor a = Tensor::from_data({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor bias = Tensor::from_data({3}, {10, 20, 30});
  CHECK(add(a, bias).to_vector() == std::vector<float>{11, 22, 33, 14, 25, 36});
  Tensor column = Tensor::from_data({2, 1}, {2, 4});
  CHECK(div(a, column).to_vector() == std::vector<float>{0.5f, 1, 1.5f, 1, 1.25f, 1.5f});
  CHECK(mul(Tensor::scalar(3), a).to_vector() == std::vector<float>{3, 6, 9, 12, 15, 18});
}

TEST_CASE("a shape mismatch names the op and both shapes", "[ops][errors]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  b.set_name("encoder.bias");
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("add") && Catch::Contains("[2, 3]") &&
                                   Catch::Contains("'encoder.bias' [4, 3]"));
}

TEST_CASE("glu takes the first half as value and the second as gate", "[ops][elementwise]") {
  Tensor x = Tensor::from_data({1, 4}, {2, 3, 0, 100});
  std::vector<float> y = glu(x).to_vector();
  CHECK(y[0] == Approx(1.0f));  // 2 * sigmoid(0)
  CHECK(y[1] == Approx(3.0f));  // 3 * sigmoid(100)
}

TEST_CASE("dropout is inverted, seeded and thread-count independent", "[ops][dropout]") {
  Tensor x = Tensor::ones({1000, 300});
  set_num_threads(1);
  std::vector<float> one = dropout(x, 0.25f, true, 42, 3).to_vector();
  set_num_threads(2);
  std::vector<float> two = dropout(x, 0.25f, true, 42, 3).to_vector();
  CHECK(one == two);
  double total = 0;
  int64_t zeros = 0, others = 0;
  for (float v : one) {
    total += v;
    zeros += v == 0.0f;
    others += v != 0.0f && v != 1.0f / 0.75f;
  }
  CHECK(others == 0);  // every element is dropped or scaled by exactly 1/(1-p)
  CHECK(zeros / double(one.size()) == Approx(0.25).margin(0.01));
  CHECK(total / one.size() == Approx(1.0).margin(0.01));  // expectation kept
  CHECK(dropout(x, 0.25f, false, 42, 3).same_as(x));
  CHECK(dropout(x, 0.25f, true, 42, 4).to_vector() != one);
}

TEST_CASE("dropout keeps exactly the elements whose uniform01 draw is >= p, forward and backward",
          "[ops][dropout]") {
  // The kernel tests the draw's 24 bits as an integer; this is the definition, element by element.
  // p = 0.25 puts the threshold on an integer, the others between two.
  const int64_t n = 70001;  // not a multiple of any vector width
  Tensor x = Tensor::full({n}, 2.0f, /*requires_grad=*/true);
  for (float p : {0.25f, 0.1f, 0.3f, 1.0f / 3.0f, 0.999f}) {
    INFO("p " << p);
    x.zero_grad();
    Tensor y = dropout(x, p, true, 7, 9);
    backward(sum(y));
    const std::vector<float> out = y.to_vector(), grad = x.grad().to_vector();
    const float scale = 1.0f / (1.0f - p);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool kept = uniform01(7, 9, static_cast<uint64_t>(i)) >= p;
      wrong += out[i] != (kept ? 2.0f * scale : 0.0f) || grad[i] != (kept ? scale : 0.0f);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("elementwise gradients", "[ops][gradcheck]") {
  Tensor a = random_input({3, 4}, 1), b = random_input({3, 4}, 2);
  Tensor positive = random_input({3, 4}, 3, 0.5f, 2.0f);
  Tensor row = random_input({4}, 4), column = random_input({3, 1}, 5);
  Tensor away_from_zero = random_input({3, 4}, 6, 0.2f, 1.0f);
  // Keep relu away from its kink: |x| >= 0.2 with random signs.
  for (int64_t i = 0; i < away_from_zero.numel(); i += 2) away_from_zero.data()[i] *= -1.0f;
  Tensor mask = Tensor::from_data({1, 4}, {0, 1, 0, 1});

  check_gradients("add", {a, b}, [](const Inputs& in) { return add(in[0], in[1]); });
  check_gradients("add broadcast row", {a, row}, [](const Inputs& in) { return add(in[0], in[1]); });
  check_gradients("sub broadcast column", {a, column}, [](const Inputs& in) { return sub(in[0], in[1]); });
  check_gradients("mul", {a, b}, [](const Inputs& in) { return mul(in[0], in[1]); });
  check_gradients("mul broadcast leading", {row, a}, [](const Inputs& in) { return mul(in[0], in[1]); });
  check_gradients("div", {a, positive}, [](const Inputs& in) { return div(in[0], in[1]); });
  check_gradients("div broadcast", {a, column}, [](const Inputs& in) {
    return div(in[0], add_scalar(exp(in[1]), 1.0f));
  });
  check_gradients("scale", {a}, [](const Inputs& in) { return scale(in[0], -2.5f); });
  check_gradients("add_scalar", {a}, [](const Inputs& in) { return add_scalar(in[0], 3.0f); });
  check_gradients("neg", {a}, [](const Inputs& in) { return neg(in[0]); });
  check_gradients("relu", {away_from_zero}, [](const Inputs& in) { return relu(in[0]); },
                  {/*step=*/1e-2});
  check_gradients("gelu", {a}, [](const Inputs& in) { return gelu(in[0]); });
  check_gradients("sigmoid", {a}, [](const Inputs& in) { return sigmoid(in[0]); });
  check_gradients("tanh", {a}, [](const Inputs& in) { return tanh(in[0]); });
  check_gradients("exp", {a}, [](const Inputs& in) { return exp(in[0]); });
  check_gradients("log", {positive}, [](const Inputs& in) { return log(in[0]); });
  check_gradients("sqrt", {positive}, [](const Inputs& in) { return sqrt(in[0]); });
  check_gradients("glu", {random_input({2, 3, 8}, 7)}, [](const Inputs& in) { return glu(in[0]); });
  check_gradients("masked_fill", {a}, [mask](const Inputs& in) { return masked_fill(in[0], mask, -5.0f); });
  check_gradients("dropout (fixed stream)", {a}, [](const Inputs& in) {
    return dropout(in[0], 0.3f, true, 11, 5);
  });
}

TEST_CASE("reduction gradients", "[ops][gradcheck]") {
  Tensor x = random_input({2, 3, 4}, 8);
  check_gradients("sum all", {x}, [](const Inputs& in) { return sum(in[0]); });
  check_gradients("mean all", {x}, [](const Inputs& in) { return mean(in[0]); });
  for (int dim = 0; dim < 3; ++dim) {
    check_gradients("sum dim " + std::to_string(dim), {x}, [dim](const Inputs& in) { return sum(in[0], dim); });
    check_gradients("mean dim keepdim " + std::to_string(dim), {x},
                    [dim](const Inputs& in) { return mean(in[0], dim, true); });
    check_gradients("max dim " + std::to_string(dim), {x}, [dim](const Inputs& in) { return max(in[0], dim); });
  }
}
