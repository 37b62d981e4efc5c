// RmsNorm (layers/rms_norm.h), tested the way every layer is: forward values against a case worked
// by hand, the shared finite-difference gradient check with the layer's parameters as inputs
// (tests/support/gradcheck.h), and the parameter names that become checkpoint keys.
// docs/extending.md quotes this file as the example for a new layer's tests.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/layer_norm.h"
#include "layers/rms_norm.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;
using payless::testing::random_input;
using Inputs = std::vector<Tensor>;

namespace {

// A model-like owner, so that the test sees the dotted name a checkpoint would use.
struct NormOwner : Module {
  RmsNorm final_norm;
  explicit NormOwner(int64_t c) : final_norm(c) { register_module("final_norm", final_norm); }
};

}  // namespace

TEST_CASE("RmsNorm divides each row by its root mean square, then scales by the gain",
          "[layers][rms_norm]") {
  RmsNorm norm(4);
  CHECK(norm.weight.to_vector() == std::vector<float>{1, 1, 1, 1});
  CHECK(norm.eps == 1e-6f);
  norm.weight = Tensor::from_data({4}, {1, 2, 0.5f, -1});
  // Two rows of one (B, T, C) = (2, 1, 4) input, normalised independently:
  //   [1, 2, 3, 4]:  mean(x²) = 30/4 = 7.5   -> y = [1, 4, 1.5, -4] / sqrt(7.5)
  //   [3, -4, 0, 0]: mean(x²) = 25/4 = 6.25  -> y = [3, -8, 0, 0] / 2.5 = [1.2, -3.2, 0, 0]
  Tensor x = Tensor::from_data({2, 1, 4}, {1, 2, 3, 4, 3, -4, 0, 0});
  Tensor y = norm.forward(x);
  REQUIRE(y.shape() == Shape{2, 1, 4});
  const std::vector<float> v = y.to_vector();
  const float r = std::sqrt(7.5f + 1e-6f);
  const std::vector<float> expected = {1 / r, 4 / r, 1.5f / r, -4 / r, 1.2f, -3.2f, 0, 0};
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    CHECK(v[i] == Approx(expected[i]).epsilon(1e-5));
  }
}

TEST_CASE("RmsNorm re-scales but does not re-centre, unlike LayerNorm", "[layers][rms_norm]") {
  RmsNorm rms(4);
  LayerNorm ln(4);
  Tensor constant = Tensor::from_data({1, 4}, {2, 2, 2, 2});
  for (float v : rms.forward(constant).to_vector()) CHECK(v == Approx(1.0f).epsilon(1e-5));
  for (float v : ln.forward(constant).to_vector()) CHECK(v == Approx(0.0f).margin(1e-5));
  // Scale-invariant up to eps; and eps keeps an all-zero (padding) row at 0 instead of 0/0.
  Tensor x = Tensor::from_data({1, 4}, {0.5f, -1, 2, 0.25f});
  const std::vector<float> y = rms.forward(x).to_vector(), y10 = rms.forward(scale(x, 10)).to_vector();
  for (size_t i = 0; i < y.size(); ++i) CHECK(y10[i] == Approx(y[i]).epsilon(1e-5));
  for (float v : rms.forward(Tensor::zeros({1, 4})).to_vector()) CHECK(v == 0.0f);
}

TEST_CASE("RmsNorm gradients, the gain included", "[layers][rms_norm][gradcheck]") {
  RmsNorm norm(6);
  Rng rng(4);
  rng.uniform_(norm.weight, 0.5f, 1.5f);  // a gain of all ones would hide a wrong ∂x formula
  check_gradients("rms_norm", {random_input({2, 3, 6}, 1), norm.weight},
                  [&](const Inputs& in) { return norm.forward(in[0]); });
}

TEST_CASE("RmsNorm parameters: one gain named weight, checked sizes", "[layers][rms_norm]") {
  NormOwner owner(4);
  auto named = owner.named_parameters();
  REQUIRE(named.size() == 1);
  CHECK(named[0].first == "final_norm.weight");
  CHECK(named[0].second.requires_grad());
  CHECK(RmsNorm(512).num_parameters() == 512);  // LayerNorm(512) has 1024: no bias here
  CHECK(LayerNorm(512).num_parameters() == 1024);

  CHECK_THROWS_WITH(RmsNorm(0), Catch::Contains("channels must be positive"));
  CHECK_THROWS_WITH(RmsNorm(4, 0.0f), Catch::Contains("eps must be positive"));
  owner.name_parameters("decoder.");
  CHECK_THROWS_WITH(owner.final_norm.forward(Tensor::zeros({2, 3, 5})),
                    Catch::Contains("decoder.final_norm.weight") && Catch::Contains("[2, 3, 5]"));
  CHECK_THROWS_WITH(owner.final_norm.forward(Tensor()), Catch::Contains("undefined"));
}
