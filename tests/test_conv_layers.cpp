// LightweightConv, DynamicConv and the LightConv encoder/decoder layers (layers/lightweight_conv.h,
// layers/dynamic_conv.h, layers/conv_layers.h): finite-difference gradients with the parameters as
// inputs (DropConnect included, with a fixed mask), step-by-step decoding against the full causal
// forward (with a beam reorder in the middle), DropConnect's expectation, padding invariance of the
// encoder, parameter counts (spec §4.8), names (spec §4.9), and golden PyTorch fixtures written by
// tests/fixtures/make_fixtures_conv.py.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/conv_layers.h"
#include "layers/dynamic_conv.h"
#include "layers/lightweight_conv.h"
#include "tests/support/compare.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using nlohmann::json;
using Inputs = std::vector<Tensor>;

namespace {

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
  Rng init(43);
  DynamicConv conv(6, 3, 2, 2, true, 0.0f, false, init);
  conv.eval();
  Tensor x = random_input({1, 4, 6}, 12);
  backward(sum(conv.forward(x)));
  std::vector<float> full = x.grad().to_vector();
  x.zero_grad();
  Tensor a = conv.kernel_weights(x).detach();
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

// ---- the encoder and decoder layers --------------------------------------------------------------

namespace {

LightConvLayerConfig small_config(ConvType type, bool glu, bool pre_norm, int64_t K) {
  LightConvLayerConfig c;
  c.embed_dim = 8;
  c.conv_dim = 8;
  c.ffn_dim = 12;
  c.heads = 2;
  c.kernel_size = K;
  c.conv_type = type;
  c.glu = glu;
  c.normalize_before = pre_norm;
  c.dropout = 0.1f;
  c.input_dropout = 0.2f;
  c.weight_dropout = 0.25f;
  // These two draw from global_rng() inside FeedForward / MultiheadAttention; the gradient checks
  // need every call to see the same masks, and our own Rng only reaches the layer's own dropouts.
  c.relu_dropout = 0.0f;
  c.attention_dropout = 0.0f;
  return c;
}

const char* type_name(ConvType t) { return t == ConvType::kLightweight ? "lightweight" : "dynamic"; }

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

// Parameters of every module a little away from their initial values (LayerNorm gains 1 and
// biases 0 would hide a swapped gain/bias), from a fixed seed.
void perturb_parameters(Module& m, uint64_t seed) {
  for (auto& [name, t] : m.named_parameters()) {
    Tensor noise = Tensor::empty(t.shape());
    Rng(seed++).uniform_(noise, -0.1f, 0.1f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += noise.data()[i];
  }
}

}  // namespace

TEST_CASE("conv layers use the reference parameter names", "[layers][conv]") {
  LightConvLayerConfig c = small_config(ConvType::kDynamic, true, false, 3);
  LightConvEncoderLayer enc(c);
  CHECK(names_of(enc) ==
        std::vector<std::string>{"linear1.weight", "linear1.bias", "conv.weight_linear.weight",
                                 "linear2.weight", "linear2.bias", "fc1.weight", "fc1.bias",
                                 "fc2.weight", "fc2.bias", "layer_norm1.weight", "layer_norm1.bias",
                                 "layer_norm2.weight", "layer_norm2.bias"});
  c.conv_type = ConvType::kLightweight;
  LightConvDecoderLayer dec(c);
  CHECK(names_of(dec) ==
        std::vector<std::string>{
            "linear1.weight", "linear1.bias", "conv.weight", "linear2.weight", "linear2.bias",
            "conv_layer_norm.weight", "conv_layer_norm.bias", "encoder_attn.q_proj.weight",
            "encoder_attn.q_proj.bias", "encoder_attn.k_proj.weight", "encoder_attn.k_proj.bias",
            "encoder_attn.v_proj.weight", "encoder_attn.v_proj.bias", "encoder_attn.out_proj.weight",
            "encoder_attn.out_proj.bias", "encoder_attn_layer_norm.weight",
            "encoder_attn_layer_norm.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
            "final_layer_norm.weight", "final_layer_norm.bias"});
  LightConvDecoderLayer lm(c, /*encoder_attention=*/false);
  for (const std::string& name : names_of(lm)) CHECK(name.find("encoder_attn") == std::string::npos);
  CHECK(enc.linear1.weight.shape() == Shape{16, 8});  // d -> 2C with GLU
  CHECK(dec.conv.lightweight->padding_l == 2);        // causal
  CHECK(enc.conv.dynamic->padding_l == 1);            // centred
}

TEST_CASE("conv layer parameter counts follow spec §4.8", "[layers][conv]") {
  const int64_t d = 16, F = 24, H = 4, K = 5;  // C = d, as in every registered arch
  for (ConvType type : {ConvType::kLightweight, ConvType::kDynamic})
    for (bool glu : {false, true}) {
      INFO(type_name(type) << (glu ? " with GLU" : " without GLU"));
      LightConvLayerConfig c;
      c.embed_dim = c.conv_dim = d;
      c.ffn_dim = F;
      c.heads = H;
      c.kernel_size = K;
      c.conv_type = type;
      c.glu = glu;
      const int64_t C = d, g = glu ? 2 : 1;
      const int64_t conv = type == ConvType::kLightweight ? H * K : C * H * K;
      const int64_t encoder = (d * g * C + g * C) + (C * d + d) + (d * F + F) + (F * d + d) + 4 * d + conv;
      CHECK(LightConvEncoderLayer(c).num_parameters() == encoder);
      CHECK(LightConvDecoderLayer(c).num_parameters() == encoder + 4 * (d * d + d) + 2 * d);
      CHECK(LightConvDecoderLayer(c, false).num_parameters() == encoder);  // LM: two LayerNorms
    }
}

TEST_CASE("conv layers reject bad configurations and inputs", "[layers][conv][errors]") {
  LightConvLayerConfig c = small_config(ConvType::kDynamic, true, false, 4);
  CHECK_THROWS_WITH(LightConvEncoderLayer(c), Catch::Contains("even"));
  CHECK_NOTHROW(LightConvDecoderLayer(c));
  c.kernel_size = 3;
  c.input_dropout = 1.0f;
  CHECK_THROWS_WITH(LightConvEncoderLayer(c), Catch::Contains("input_dropout"));
  c.input_dropout = 0.0f;
  LightConvEncoderLayer enc(c);
  CHECK_THROWS_WITH(enc.forward(Tensor::zeros({2, 5, 7})), Catch::Contains("d = 8"));
  CHECK_THROWS_WITH(enc.forward(Tensor::zeros({2, 5, 8}), Tensor::zeros({2, 4})),
                    Catch::Contains("padding_mask") && Catch::Contains("[2, 4]"));
  LightConvDecoderLayer dec(c), lm(c, false);
  CHECK_THROWS_WITH(dec.forward(Tensor::zeros({2, 5, 8})), Catch::Contains("no encoder_out"));
  CHECK_THROWS_WITH(lm.forward(Tensor::zeros({2, 5, 8}), Tensor::zeros({2, 3, 8})),
                    Catch::Contains("language-model"));
}

TEST_CASE("conv layer gradients, every parameter included", "[layers][conv][gradcheck]") {
  const int64_t B = 2, T = 5, S = 4;
  Tensor x = random_input({B, T, 8}, 21);
  Tensor enc_out = random_input({B, S, 8}, 22);
  // Sentence 1 has two padded positions (left-padded source).
  Tensor src_mask = Tensor::from_data({B, T}, {0, 0, 0, 0, 0, 1, 1, 0, 0, 0});
  Tensor enc_attn_mask = Tensor::from_data({B, S}, {0, 0, 0, 0, 1, 0, 0, 0});
  // A whole layer has ReLUs, GLU gates and LayerNorms: the default step of 1e-2 lets enough
  // pre-activations cross the ReLU kink to spoil a few central differences, 1e-3 does not.
  payless::testing::GradCheckOptions smooth_step;
  smooth_step.step = 1e-3;
  for (ConvType type : {ConvType::kLightweight, ConvType::kDynamic})
    for (bool pre : {false, true}) {
      const bool glu = !pre;  // two of the four GLU/norm combinations per conv type
      const std::string what = std::string(type_name(type)) + (pre ? ", pre-norm" : ", post-norm") +
                               (glu ? ", GLU" : "");
      Rng init(40);  // fixed weights whatever the tests run before
      LightConvEncoderLayer enc(small_config(type, glu, pre, 3), init);
      perturb_parameters(enc, 30);
      Inputs in{x};
      for (auto& [name, t] : enc.named_parameters()) in.push_back(t);
      check_gradients("encoder layer " + what, in, [&](const Inputs& in) {
        Rng rng(5);  // every call sees the same dropout and DropConnect masks
        return enc.forward(in[0], src_mask, rng);
      }, smooth_step);

      LightConvDecoderLayer dec(small_config(type, glu, pre, 4), true, init);
      perturb_parameters(dec, 60);
      Inputs din{x, enc_out};
      for (auto& [name, t] : dec.named_parameters()) din.push_back(t);
      check_gradients("decoder layer " + what, din, [&](const Inputs& in) {
        Rng rng(6);
        return dec.forward(in[0], in[1], enc_attn_mask, rng);
      }, smooth_step);
    }
}

TEST_CASE("conv decoder layer: step-by-step decoding equals the full forward, across a reorder",
          "[layers][conv]") {
  const int64_t N = 3, T = 6, S = 5;
  Tensor x = random_input({N, T, 8}, 23).detach();
  Tensor enc_out = random_input({N, S, 8}, 24).detach();
  Tensor enc_mask = Tensor::from_data({N, S}, {0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  const int64_t reorder_after = 2;
  const std::vector<int64_t> order{1, 1, 2};
  // After the reorder, hypothesis n continues old hypothesis order[n]: its prefix and its source.
  Tensor x2 = x.clone_data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t <= reorder_after; ++t)
      for (int64_t c = 0; c < 8; ++c) x2.data()[(n * T + t) * 8 + c] = x.data()[(order[n] * T + t) * 8 + c];
  Tensor enc_out2 = reorder_batch(enc_out, order), enc_mask2 = reorder_batch(enc_mask, order);
  for (ConvType type : {ConvType::kLightweight, ConvType::kDynamic})
    for (bool pre : {false, true})
      for (bool with_encoder : {true, false}) {
        INFO(type_name(type) << (pre ? " pre-norm" : " post-norm") << (with_encoder ? "" : " LM"));
        Rng init(41);
        LightConvDecoderLayer dec(small_config(type, /*glu=*/!pre, pre, 4), with_encoder, init);
        perturb_parameters(dec, 90);
        dec.eval();
        NoGrad no_grad;
        const Tensor e = with_encoder ? enc_out : Tensor(), m = with_encoder ? enc_mask : Tensor();
        const Tensor e2 = with_encoder ? enc_out2 : Tensor(), m2 = with_encoder ? enc_mask2 : Tensor();
        Tensor full = dec.forward(x, e, m), full2 = dec.forward(x2, e2, m2);
        LightConvDecoderLayerState state;
        for (int64_t t = 0; t < T; ++t) {
          INFO("step " << t);
          const bool after = t > reorder_after;
          Tensor y = dec.step(time_step(after ? x2 : x, t), e, m, state);
          CHECK(max_abs_diff(y, time_step(after ? full2 : full, t)) <= 1e-5f);
          if (t == reorder_after) state.reorder(order);
        }
        CHECK(state.conv.length() == 3);  // K-1: constant memory
      }
}

TEST_CASE("conv encoder layer: real positions do not depend on left padding", "[layers][conv]") {
  for (ConvType type : {ConvType::kLightweight, ConvType::kDynamic}) {
    INFO(type_name(type));
    Rng init(42);
    LightConvEncoderLayer enc(small_config(type, true, false, 5), init);
    perturb_parameters(enc, 120);
    enc.eval();
    NoGrad no_grad;
    // Two sentences of lengths 4 and 2, each alone and unpadded...
    Tensor a = random_input({1, 4, 8}, 25).detach(), b = random_input({1, 2, 8}, 26).detach();
    Tensor ya = enc.forward(a), yb = enc.forward(b);
    // ... then in one batch, left-padded to T = 4 + extra, with garbage (not zeros) at the pads.
    for (int64_t extra : {0, 3}) {
      INFO("extra padding " << extra);
      const int64_t T = 4 + extra;
      Tensor x = random_input({2, T, 8}, 27).detach();  // the garbage
      Tensor mask = Tensor::zeros({2, T});
      for (int64_t t = 0; t < T; ++t) {
        const int64_t pad_a = T - 4, pad_b = T - 2;
        mask.data()[t] = t < pad_a;
        mask.data()[T + t] = t < pad_b;
        for (int64_t c = 0; c < 8; ++c) {
          if (t >= pad_a) x.data()[t * 8 + c] = a.data()[(t - pad_a) * 8 + c];
          if (t >= pad_b) x.data()[(T + t) * 8 + c] = b.data()[(t - pad_b) * 8 + c];
        }
      }
      Tensor y = enc.forward(x, mask);
      float diff = 0.0f;
      for (int64_t t = 0; t < 4; ++t)
        for (int64_t c = 0; c < 8; ++c)
          diff = std::max(diff, std::fabs(y.data()[(T - 4 + t) * 8 + c] - ya.data()[t * 8 + c]));
      for (int64_t t = 0; t < 2; ++t)
        for (int64_t c = 0; c < 8; ++c)
          diff = std::max(diff, std::fabs(y.data()[(T + T - 2 + t) * 8 + c] - yb.data()[t * 8 + c]));
      CHECK(diff <= 1e-5f);
    }
  }
}

// ---- PyTorch fixtures ----------------------------------------------------------------------------

namespace {

LightConvLayerConfig config_of(const json& c) {
  LightConvLayerConfig config;
  config.embed_dim = config.conv_dim = c.at("C").get<int64_t>();
  config.ffn_dim = c.at("F").get<int64_t>();
  config.heads = c.at("H").get<int64_t>();
  config.kernel_size = c.at("kernel_size").get<int64_t>();
  config.conv_type = c.at("conv_type") == "lightweight" ? ConvType::kLightweight : ConvType::kDynamic;
  config.glu = c.at("glu").get<bool>();
  config.normalize_before = c.at("normalize_before").get<bool>();
  config.dropout = config.input_dropout = config.relu_dropout = 0.0f;
  config.attention_dropout = config.weight_dropout = 0.0f;
  return config;
}

}  // namespace

TEST_CASE("conv modules equal the PyTorch fixtures", "[layers][conv][fixtures]") {
  for (const char* name : {"conv_lightweight_k3", "conv_lightweight_k4_causal", "conv_lightweight_k7_causal",
                           "conv_dynamic_k3", "conv_dynamic_k4_causal", "conv_dynamic_k7_causal"}) {
    INFO("fixture " << name);
    const json fixture = load_fixture(name);
    const json& c = fixture.at("config");
    const int64_t C = c.at("C"), H = c.at("H"), K = c.at("kernel_size"), P = c.at("padding_l");
    auto inputs = inputs_of(fixture);
    AnyConv conv = make_conv(c.at("conv_type") == "dynamic", C, K, H, P);
    compare_with_fixture(fixture, conv.module(), inputs, [&] { return conv.forward(inputs.at("x")); });
  }
}

TEST_CASE("conv encoder and decoder layers equal the PyTorch fixtures", "[layers][conv][fixtures]") {
  {
    const json fixture = load_fixture("conv_encoder_layer");
    LightConvEncoderLayer enc(config_of(fixture.at("config")));
    auto inputs = inputs_of(fixture);
    const Tensor mask = tensor_from(fixture.at("masks").at("padding_mask"));
    compare_with_fixture(fixture, enc, inputs, [&] { return enc.forward(inputs.at("x"), mask); });
  }
  for (const char* name : {"conv_decoder_layer", "conv_decoder_layer_lm"}) {
    INFO("fixture " << name);
    const json fixture = load_fixture(name);
    const bool with_encoder = fixture.at("config").at("encoder_attention").get<bool>();
    LightConvDecoderLayer dec(config_of(fixture.at("config")), with_encoder);
    auto inputs = inputs_of(fixture);
    const Tensor mask = with_encoder ? tensor_from(fixture.at("masks").at("encoder_padding_mask")) : Tensor();
    compare_with_fixture(fixture, dec, inputs, [&] {
      return dec.forward(inputs.at("x"), with_encoder ? inputs.at("encoder_out") : Tensor(), mask);
    });
  }
}
