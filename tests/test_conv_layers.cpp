// LightweightConv, DynamicConv and the LightConv encoder/decoder layers (layers/lightweight_conv.h,
// layers/dynamic_conv.h, layers/conv_layers.h): finite-difference gradients with the parameters as
// inputs (DropConnect included, with a fixed mask), step-by-step decoding against the full causal
// forward (with a beam reorder in the middle), DropConnect's expectation, padding invariance of the
// encoder, parameter counts (spec §4.8), names (spec §4.9), and golden PyTorch fixtures written by
// tests/fixtures/make_fixtures_conv.py.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/dynamic_conv.h"
#include "layers/lightweight_conv.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;
using payless::testing::random_input;
using Inputs = std::vector<Tensor>;

namespace {

// Max |a - b| over two equally shaped tensors.
float max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  float m = 0.0f;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.data()[i] - b.data()[i]));
  return m;
}

// Row t of x (N, T, C) as (N, 1, C).
Tensor time_step(const Tensor& x, int64_t t) { return narrow(x, 1, t, 1).clone_data(); }

// Sets every element of a parameter from a fixed seed, so tests do not depend on the global RNG.
void fill(Tensor& t, uint64_t seed, float low = -1.0f, float high = 1.0f) {
  Rng rng(seed);
  rng.uniform_(t, low, high);
}

// Either conv behind one interface, so each test runs for both.
struct AnyConv {
  std::unique_ptr<LightweightConv> light;
  std::unique_ptr<DynamicConv> dynamic;
  Module& module() { return light ? static_cast<Module&>(*light) : *dynamic; }
  Tensor forward(const Tensor& x, Rng& rng) { return light ? light->forward(x, rng) : dynamic->forward(x, rng); }
  Tensor forward(const Tensor& x) { return forward(x, global_rng()); }
  Tensor step(const Tensor& x, ConvState& s) { return light ? light->step(x, s) : dynamic->step(x, s); }
  Tensor& weight() { return light ? light->weight : dynamic->weight_linear.weight; }
};

AnyConv make_conv(bool dynamic, int64_t C, int64_t K, int64_t H, int64_t P, float weight_dropout = 0.0f,
                  bool bias = false) {
  AnyConv conv;
  if (dynamic) conv.dynamic = std::make_unique<DynamicConv>(C, K, H, P, true, weight_dropout, bias);
  else conv.light = std::make_unique<LightweightConv>(C, K, H, P, true, weight_dropout, bias);
  fill(conv.weight(), 100 + K, -1.0f, 1.0f);
  return conv;
}

}  // namespace

// ---- the conv modules ---------------------------------------------------------------------------

TEST_CASE("conv modules: names, shapes and initialisation", "[layers][conv]") {
  LightweightConv light(8, 3, 2, 2);
  auto names = light.named_parameters();
  REQUIRE(names.size() == 1);
  CHECK(names[0].first == "weight");
  CHECK(light.weight.shape() == Shape{2, 3});
  // Xavier-uniform of the reference's (H, 1, K) storage: bound sqrt(6 / (K + H·K)).
  const float bound = std::sqrt(6.0f / (3 + 2 * 3));
  for (float v : light.weight.to_vector()) CHECK(std::fabs(v) <= bound);

  DynamicConv dyn(8, 3, 2, 1, true, 0.0f, /*bias=*/true);
  names = dyn.named_parameters();
  REQUIRE(names.size() == 2);
  CHECK(names[0].first == "conv_bias");  // own parameters first, then children's
  CHECK(names[1].first == "weight_linear.weight");
  CHECK(dyn.weight_linear.weight.shape() == Shape{6, 8});  // (H·K, C), no bias
  CHECK_FALSE(dyn.weight_linear.bias.defined());

  CHECK_THROWS_WITH(LightweightConv(8, 3, 3, 2), Catch::Contains("divisible"));
  CHECK_THROWS_WITH(DynamicConv(8, 3, 2, 3), Catch::Contains("padding_l = 3"));
  CHECK_THROWS_WITH(LightweightConv(8, 3, 2, 1, true, 1.0f), Catch::Contains("weight_dropout"));
  light.name_parameters("decoder.layers.0.conv.");
  CHECK_THROWS_WITH(light.forward(Tensor::zeros({2, 4, 6})),
                    Catch::Contains("decoder.layers.0.conv.weight") && Catch::Contains("[2, 4, 6]"));
}

TEST_CASE("LightweightConv normalises each head's kernel with a softmax over K", "[layers][conv]") {
  LightweightConv conv(4, 3, 2, 2);
  conv.weight = Tensor::from_data({2, 3}, {0, 0, 0, 1, 2, 3});
  Tensor w = conv.normalized_weight();
  std::vector<float> v = w.to_vector();
  CHECK(v[0] == Approx(1.0 / 3));
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(v[5] == Approx(std::exp(3.0) / z));
  // Causal, so y at t = 0 is the last tap times x_0 (the older taps meet zero padding).
  conv.eval();
  Tensor x = Tensor::from_data({1, 1, 4}, {1, 1, 1, 1});
  std::vector<float> y = conv.forward(x).to_vector();
  CHECK(y[0] == Approx(1.0 / 3));
  CHECK(y[3] == Approx(std::exp(3.0) / z));
}

TEST_CASE("DynamicConv orders the generator's outputs head-major (h·K + k)", "[layers][conv]") {
  // H = 2, K = 2, C = 2 (R = 1); only output row h·K+k = 1·2+0 = 2 reads the input, so for x > 0
  // head 1 puts (almost) all its weight on tap 0 and head 0 stays uniform.
  DynamicConv conv(2, 2, 2, 1);
  conv.eval();
  conv.weight_linear.weight = Tensor::from_data({4, 2}, {0, 0, 0, 0, 50, 50, 0, 0});
  Tensor x = Tensor::from_data({1, 2, 2}, {1, 1, 3, 5});
  std::vector<float> y = conv.forward(x).to_vector();  // P = 1: y_t = a_0 x_{t-1} + a_1 x_t
  CHECK(y[0] == Approx(0.5 * 1));         // t = 0, head 0: half of x_0 (x_{-1} is padding)
  CHECK(y[1] == Approx(0.0).margin(1e-6));  // t = 0, head 1: all on tap 0, which is padding
  CHECK(y[2] == Approx(0.5 * 1 + 0.5 * 3));
  CHECK(y[3] == Approx(1.0));             // t = 1, head 1: x_0 of channel 1
}

TEST_CASE("conv module gradients, parameters included", "[layers][conv][gradcheck]") {
  const int64_t C = 6, H = 2;  // R = 3
  struct Case {
    int64_t T, K, P;
    const char* what;
  };
  const Case cases[] = {{5, 3, 2, "causal"}, {5, 3, 1, "centred"}, {3, 5, 4, "causal K>T"}, {3, 5, 2, "centred K>T"}};
  for (bool dynamic : {false, true})
    for (const Case& cc : cases) {
      const std::string what = std::string(dynamic ? "DynamicConv " : "LightweightConv ") + cc.what;
      Tensor x = random_input({2, cc.T, C}, 11);
      for (float p : {0.0f, 0.3f}) {
        AnyConv conv = make_conv(dynamic, C, cc.K, H, cc.P, p, /*bias=*/true);
        // The bias is a parameter too; give it non-zero values so its gradient is exercised.
        Module& m = conv.module();
        for (auto& [name, t] : m.named_parameters())
          if (name != "weight" && name != "weight_linear.weight") fill(t, 3);
        Inputs in{x};
        for (auto& [name, t] : m.named_parameters()) in.push_back(t);
        // DropConnect with a fixed mask: a fresh Rng with the same seed in every call gives every
        // call (both analytic ones and each finite-difference one) the same stream.
        check_gradients(what + (p > 0 ? " with DropConnect" : ""), in, [&conv](const Inputs& in) {
          Rng rng(77);
          return conv.forward(in[0], rng);
        });
      }
    }
}

TEST_CASE("DynamicConv's input gradient has both paths: conv and kernel generator", "[layers][conv]") {
  // Counter-check for the gradcheck above: dropping the generator path (detaching the kernels)
  // changes ∂x, so the gradient check really sees the second path.
  DynamicConv conv(6, 3, 2, 2);
  conv.eval();
  Tensor x = random_input({1, 4, 6}, 12);
  backward(sum(conv.forward(x)));
  std::vector<float> full = x.grad().to_vector();
  x.zero_grad();
  Tensor a = conv.kernels(x).detach();
  backward(sum(dynamic_conv(x, a, 2)));
  std::vector<float> conv_only = x.grad().to_vector();
  float diff = 0.0f;
  for (size_t i = 0; i < full.size(); ++i) diff = std::max(diff, std::fabs(full[i] - conv_only[i]));
  CHECK(diff > 1e-3f);
}

TEST_CASE("conv step-by-step decoding equals the full causal forward, across a beam reorder",
          "[layers][conv]") {
  const int64_t N = 3, T = 7, C = 8, H = 2;
  for (bool dynamic : {false, true})
    for (int64_t K : {1, 4, 9}) {  // K = 1 keeps no state; K = 9 > T never fills the window
      INFO((dynamic ? "DynamicConv" : "LightweightConv") << " K=" << K);
      AnyConv conv = make_conv(dynamic, C, K, H, K - 1, /*weight_dropout=*/0.2f, /*bias=*/true);
      conv.module().eval();
      Tensor x = random_input({N, T, C}, 13).detach();
      // After step 3 the beam keeps hypotheses {2, 0, 0}: from then on hypothesis n continues the
      // prefix of old hypothesis order[n]. The reference is the full forward of those sequences.
      const int64_t reorder_after = 3;
      const std::vector<int64_t> order{2, 0, 0};
      Tensor x2 = x.clone_data();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t <= reorder_after; ++t)
          for (int64_t c = 0; c < C; ++c)
            x2.data()[(n * T + t) * C + c] = x.data()[(order[n] * T + t) * C + c];
      NoGrad no_grad;
      Tensor full = conv.forward(x), full2 = conv.forward(x2);
      ConvState state;
      for (int64_t t = 0; t < T; ++t) {
        INFO("step " << t);
        Tensor y = conv.step(time_step(t <= reorder_after ? x : x2, t), state);
        CHECK(state.length() == std::min(t + 1, K - 1));
        CHECK(max_abs_diff(y, time_step(t <= reorder_after ? full : full2, t)) <= 1e-5f);
        if (t == reorder_after) state.reorder(order);
      }
    }
}

TEST_CASE("conv step refuses what would give a wrong answer", "[layers][conv][errors]") {
  LightweightConv centred(8, 3, 2, 1);
  ConvState state;
  centred.eval();
  CHECK_THROWS_WITH(centred.step(Tensor::zeros({2, 1, 8}), state), Catch::Contains("causal"));
  DynamicConv causal(8, 3, 2, 2, true, 0.1f);
  CHECK_THROWS_WITH(causal.step(Tensor::zeros({2, 1, 8}), state), Catch::Contains("eval()"));
  causal.eval();
  CHECK_THROWS_WITH(causal.step(Tensor::zeros({2, 2, 8}), state), Catch::Contains("one token"));
  causal.step(Tensor::zeros({2, 1, 8}), state);
  CHECK_THROWS_WITH(causal.step(Tensor::zeros({3, 1, 8}), state), Catch::Contains("reorder"));
  CHECK_THROWS_WITH(state.reorder({0, 2}), Catch::Contains("outside the batch"));
}

TEST_CASE("DropConnect keeps the expectation, does not renormalise, and is off in eval",
          "[layers][conv]") {
  const int64_t C = 4, H = 2, K = 3, B = 4000;
  const float p = 0.3f;
  SECTION("LightweightConv: the kernel seen through an impulse") {
    LightweightConv conv(C, K, H, K - 1, true, p);
    fill(conv.weight, 5);
    const std::vector<float> w_hat = conv.normalized_weight().to_vector();
    // x = impulse at t = 0: with causal padding y[b, t, c] = W̃[b, t, h(c), K-1-t], so the batch
    // shows B independent draws of every tap.
    Tensor x = Tensor::zeros({B, K, C});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) x.data()[b * K * C + c] = 1.0f;
    NoGrad no_grad;
    Rng rng(9);
    Tensor y = conv.forward(x, rng);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < K; ++k) {
        const float expected = w_hat[h * K + k];
        const int64_t t = K - 1 - k, c = h * (C / H);
        double total = 0.0;
        int64_t dropped = 0;
        for (int64_t b = 0; b < B; ++b) {
          const float v = y.data()[(b * K + t) * C + c];
          total += v;
          dropped += v == 0.0f;
          // Each tap is 0 or Ŵ/(1-p): scaled, never renormalised over the surviving taps.
          if (v != 0.0f) CHECK(v == Approx(expected / (1.0f - p)).epsilon(1e-5));
        }
        INFO("head " << h << " tap " << k);
        CHECK(total / B == Approx(expected).epsilon(0.05));
        CHECK(dropped / double(B) == Approx(p).margin(0.03));
      }
    conv.eval();
    Tensor a = conv.forward(x, rng), b = conv.forward(x, rng);
    CHECK(max_abs_diff(a, b) == 0.0f);
    CHECK(max_abs_diff(a, lightweight_conv(x, conv.normalized_weight(), K - 1)) == 0.0f);
  }
  SECTION("DynamicConv: the mean over many masks is the eval output") {
    DynamicConv conv(C, K, H, K - 1, true, p);
    fill(conv.weight_linear.weight, 6);
    // The same sequence B times: the training outputs differ only by their masks.
    Tensor one = random_input({1, 5, C}, 14).detach();
    Tensor x = expand(one, Shape{B, 5, C}).clone_data();
    NoGrad no_grad;
    Rng rng(10);
    Tensor train = mean(conv.forward(x, rng), 0);  // (5, C)
    conv.eval();
    Tensor eval = conv.forward(one, rng);  // (1, 5, C)
    Tensor eval_again = conv.forward(one, rng);
    CHECK(max_abs_diff(eval, eval_again) == 0.0f);
    for (int64_t i = 0; i < 5 * C; ++i) CHECK(train.data()[i] == Approx(eval.data()[i]).margin(0.02));
  }
}
