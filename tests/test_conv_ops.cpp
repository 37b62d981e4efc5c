// The conv ops (core/ops/conv.cpp): values against a loop written from the spec formula, gradients
// through the shared finite-difference check (each input used twice), the one-step forms against
// the full causal forward, and the argument errors. The kernels themselves are compared with their
// reference loops in tests/test_conv_kernels.cpp; the layers are in tests/test_conv_layers.cpp.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;
using payless::testing::random_input;
using Inputs = std::vector<Tensor>;

namespace {

// Y[b,t,c] = Σ_k w(b,t,h(c),k) · X[b,t+k-P,c] (spec §1.5), straight from the formula in double.
// w_at(b, t, h, k) gives the tap weight, so one loop serves both convolutions.
template <typename W>
std::vector<float> conv_by_formula(const Tensor& x, int64_t H, int64_t K, int64_t P, W w_at) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), R = C / H;
  std::vector<float> y(B * T * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t src = t + k - P;
          if (src >= 0 && src < T) s += double(w_at(b, t, c / R, k)) * x.data()[(b * T + src) * C + c];
        }
        y[(b * T + t) * C + c] = static_cast<float>(s);
      }
  return y;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-5f) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).margin(tol));
  }
}

// The shapes every test walks: (T, K, P) causal and centred, K <= T and K > T.
struct ConvCase {
  int64_t T, K, P;
  const char* what;
};
const ConvCase kCases[] = {
    {5, 3, 2, "causal K<=T"}, {5, 3, 1, "centred K<=T"}, {3, 5, 4, "causal K>T"},
    {3, 5, 2, "centred K>T"}, {4, 1, 0, "K=1"},          {4, 4, 0, "right-only padding"},
};

}  // namespace

TEST_CASE("lightweight_conv and dynamic_conv follow the spec formula", "[ops][conv]") {
  const int64_t B = 2, C = 6, H = 2;  // R = 3 channels per head
  for (const ConvCase& cc : kCases) {
    INFO(cc.what);
    Tensor x = random_input({B, cc.T, C}, 1);
    Tensor w = random_input({H, cc.K}, 2);
    Tensor a = random_input({B, cc.T, H, cc.K}, 3);
    check_close(lightweight_conv(x, w, cc.P).to_vector(),
                conv_by_formula(x, H, cc.K, cc.P, [&](int64_t, int64_t, int64_t h, int64_t k) {
                  return w.data()[h * cc.K + k];
                }));
    check_close(dynamic_conv(x, a, cc.P).to_vector(),
                conv_by_formula(x, H, cc.K, cc.P, [&](int64_t b, int64_t t, int64_t h, int64_t k) {
                  return a.data()[((b * cc.T + t) * H + h) * cc.K + k];
                }));
  }
}

TEST_CASE("heads own contiguous channel blocks, not c mod H", "[ops][conv]") {
  // H = 2, C = 4: channels 0,1 use row 0 (tap weight 1), channels 2,3 use row 1 (weight 10).
  Tensor x = Tensor::ones({1, 1, 4});
  Tensor w = Tensor::from_data({2, 1}, {1, 10});
  CHECK(lightweight_conv(x, w, 0).to_vector() == std::vector<float>{1, 1, 10, 10});
}

TEST_CASE("conv op gradients", "[ops][conv][gradcheck]") {
  const int64_t B = 2, C = 6, H = 2;
  for (const ConvCase& cc : kCases) {
    const std::string tag = std::string(" (") + cc.what + ")";
    const int64_t P = cc.P;
    Tensor x = random_input({B, cc.T, C}, 4);
    Tensor w = random_input({H, cc.K}, 5);
    Tensor a = random_input({B, cc.T, H, cc.K}, 6);
    check_gradients("lightweight_conv" + tag, {x, w},
                    [P](const Inputs& in) { return lightweight_conv(in[0], in[1], P); });
    check_gradients("dynamic_conv" + tag, {x, a},
                    [P](const Inputs& in) { return dynamic_conv(in[0], in[1], P); });
  }
  // Only one input needing a gradient: the other pointer is null and must stay untouched.
  Tensor x = random_input({B, 5, C}, 7), w = Tensor::from_data({2, 2}, {0.3f, 0.7f, 0.6f, 0.4f});
  check_gradients("lightweight_conv, x only", {x},
                  [w](const Inputs& in) { return lightweight_conv(in[0], w, 1); });
  CHECK_FALSE(w.has_grad());
}

TEST_CASE("one conv step equals the newest row of the causal forward", "[ops][conv]") {
  const int64_t N = 3, C = 4, H = 2, K = 4, T = 6;
  Tensor x = random_input({N, T, C}, 8).detach();
  Tensor w = random_input({H, K}, 9).detach();
  Tensor a = random_input({N, T, H, K}, 10).detach();
  NoGrad no_grad;
  const std::vector<float> light = lightweight_conv(x, w, K - 1).to_vector();
  const std::vector<float> dyn = dynamic_conv(x, a, K - 1).to_vector();
  for (int64_t t = 0; t < T; ++t) {
    INFO("step " << t);
    const int64_t j = std::min(t + 1, K);
    Tensor window = Tensor::empty({N, j, C});  // inputs t-j+1 .. t of every sequence
    Tensor a_t = Tensor::empty({N, H, K});     // this step's dynamic weights
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t i = 0; i < j * C; ++i)
        window.data()[n * j * C + i] = x.data()[(n * T + t - j + 1) * C + i];
      for (int64_t i = 0; i < H * K; ++i) a_t.data()[n * H * K + i] = a.data()[(n * T + t) * H * K + i];
    }
    std::vector<float> want_light, want_dyn;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        want_light.push_back(light[(n * T + t) * C + c]);
        want_dyn.push_back(dyn[(n * T + t) * C + c]);
      }
    Tensor y_light = lightweight_conv_step(window, w), y_dyn = dynamic_conv_step(window, a_t);
    CHECK(y_light.shape() == Shape{N, 1, C});
    check_close(y_light.to_vector(), want_light);
    check_close(y_dyn.to_vector(), want_dyn);
  }
}

TEST_CASE("conv ops reject bad arguments and name them", "[ops][conv][errors]") {
  Tensor x = Tensor::zeros({2, 5, 6});
  Tensor w = Tensor::zeros({4, 3});
  w.set_name("decoder.layers.0.conv.weight");
  CHECK_THROWS_WITH(lightweight_conv(x, w, 2), Catch::Contains("not divisible") &&
                                                   Catch::Contains("decoder.layers.0.conv.weight") &&
                                                   Catch::Contains("[2, 5, 6]"));
  Tensor w2 = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH(lightweight_conv(x, w2, 3), Catch::Contains("padding_l = 3"));
  CHECK_THROWS_WITH(lightweight_conv(x, w2, -1), Catch::Contains("padding_l = -1"));
  CHECK_THROWS_WITH(lightweight_conv(Tensor::zeros({5, 6}), w2, 1), Catch::Contains("(B, T, C)"));
  CHECK_THROWS_WITH(lightweight_conv(x, Tensor::zeros({2, 1, 3}), 1), Catch::Contains("(H, K)"));
  CHECK_THROWS_WITH(dynamic_conv(x, Tensor::zeros({2, 4, 2, 3}), 1),
                    Catch::Contains("(B, T, H, K)") && Catch::Contains("[2, 4, 2, 3]"));
  CHECK_THROWS_WITH(dynamic_conv(x, Tensor::zeros({2, 5, 4, 3}), 1), Catch::Contains("not divisible"));
  CHECK_THROWS_WITH(lightweight_conv_step(Tensor::zeros({2, 4, 6}), w2), Catch::Contains("between 1 and K = 3"));
  CHECK_THROWS_WITH(dynamic_conv_step(Tensor::zeros({2, 1, 6}), Tensor::zeros({3, 2, 3})),
                    Catch::Contains("(N, H, K)"));
  Tensor trainable = Tensor::zeros({2, 3}, true);
  CHECK_THROWS_WITH(lightweight_conv_step(Tensor::zeros({2, 1, 6}), trainable), Catch::Contains("NoGrad"));
}
