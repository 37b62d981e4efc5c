// The small layers: Linear, LayerNorm, FeedForward, Embedding, positional embeddings, and the
// parameter counts of whole layers against spec §4.8. Gradients go through the shared check
// (tests/support/gradcheck.h), with the module's own parameter tensors passed as inputs so that
// their gradients are checked too. Attention and the Transformer layers: tests/test_attention.cpp.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/embedding.h"
#include "layers/feed_forward.h"
#include "layers/layer_norm.h"
#include "layers/linear.h"
#include "layers/positional.h"
#include "layers/transformer_layer.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;
using payless::testing::random_input;
using Inputs = std::vector<Tensor>;

namespace {

// Overwrite a parameter with random values, so that e.g. LayerNorm's 1 and 0 do not hide a bug.
void randomize(Tensor& t, uint64_t seed, float low = -0.5f, float high = 0.5f) {
  Rng rng(seed);
  rng.uniform_(t, low, high);
}

// A module holding a FeedForward the way the encoder/decoder layers do.
struct FfnOwner : Module {
  FeedForward ffn;
  FfnOwner(int64_t c, int64_t f, Rng& rng) : ffn(c, f, 0.0f, rng) {
    register_module("fc1", ffn.fc1);
    register_module("fc2", ffn.fc2);
  }
};

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> names;
  for (auto& [name, t] : m.named_parameters()) names.push_back(name);
  return names;
}

}  // namespace

TEST_CASE("Linear computes x·Wᵀ + b over any leading dims", "[layers][linear]") {
  Linear lin(3, 2);
  lin.weight.data()[0] = 1, lin.weight.data()[1] = 2, lin.weight.data()[2] = 3;   // row 0
  lin.weight.data()[3] = -1, lin.weight.data()[4] = 0, lin.weight.data()[5] = 1;  // row 1
  lin.bias.data()[0] = 0.5f, lin.bias.data()[1] = -0.5f;
  Tensor x = Tensor::from_data({2, 1, 3}, {1, 1, 1, 1, 2, 3});
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == Shape{2, 1, 2});
  CHECK(y.to_vector() == std::vector<float>{6.5f, -0.5f, 14.5f, 1.5f});
  CHECK(names_of(lin) == std::vector<std::string>{"weight", "bias"});
  CHECK(names_of(Linear(3, 2, false)) == std::vector<std::string>{"weight"});
}

TEST_CASE("Linear initialisation: Xavier-uniform weight, zero bias", "[layers][linear]") {
  Rng rng(5);
  Linear lin(300, 200, true, rng);
  const float bound = std::sqrt(6.0f / 500.0f);
  double sum_sq = 0;
  for (float w : lin.weight.to_vector()) {
    CHECK(std::fabs(w) <= bound);
    sum_sq += double(w) * w;
  }
  // The variance of U(-a, a) is a²/3.
  CHECK(sum_sq / lin.weight.numel() == Approx(bound * bound / 3).epsilon(0.03));
  for (float b : lin.bias.to_vector()) CHECK(b == 0.0f);
  CHECK_THROWS_WITH(Linear(0, 3), Catch::Contains("Linear") && Catch::Contains("in=0"));
}

TEST_CASE("Linear gradients, with and without bias", "[layers][linear][gradcheck]") {
  Linear with_bias(5, 3), without_bias(5, 3, false);
  randomize(with_bias.bias, 3);
  Tensor x = random_input({2, 3, 5}, 1);
  check_gradients("linear with bias", {x, with_bias.weight, with_bias.bias},
                  [&](const Inputs& in) { return with_bias.forward(in[0]); });
  check_gradients("linear without bias", {x, without_bias.weight},
                  [&](const Inputs& in) { return without_bias.forward(in[0]); });
}

TEST_CASE("LayerNorm normalises the last dim and its gradients check", "[layers][layer_norm][gradcheck]") {
  LayerNorm norm(4);
  CHECK(norm.weight.to_vector() == std::vector<float>{1, 1, 1, 1});
  CHECK(norm.bias.to_vector() == std::vector<float>{0, 0, 0, 0});
  CHECK(norm.eps == 1e-5f);
  Tensor x = Tensor::from_data({1, 4}, {1, 2, 3, 4});
  // mean 2.5, biased variance 1.25
  std::vector<float> y = norm.forward(x).to_vector();
  const float s = 1.0f / std::sqrt(1.25f + 1e-5f);
  CHECK(y[0] == Approx(-1.5f * s));
  CHECK(y[3] == Approx(1.5f * s));

  LayerNorm ln(6);
  randomize(ln.weight, 4, 0.5f, 1.5f);
  randomize(ln.bias, 5);
  check_gradients("layer_norm", {random_input({2, 3, 6}, 6), ln.weight, ln.bias},
                  [&](const Inputs& in) { return ln.forward(in[0]); });
}

TEST_CASE("FeedForward is fc2(relu(fc1(x))) and adds no name level", "[layers][feed_forward][gradcheck]") {
  // Its own RNG: with the global one the weights depended on which tests ran before, and an
  // unlucky order put a ReLU input within the finite-difference step of its kink.
  Rng rng(23);
  FfnOwner owner(4, 7, rng);
  CHECK(names_of(owner) == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
  FeedForward& ffn = owner.ffn;
  randomize(ffn.fc1.bias, 8);
  randomize(ffn.fc2.bias, 9);
  Tensor x = random_input({2, 3, 4}, 10);
  {
    NoGrad no_grad;
    Tensor expected = ffn.fc2.forward(relu(ffn.fc1.forward(x)));
    CHECK(ffn.forward(x, true).to_vector() == expected.to_vector());
    // A central difference with step 1e-3 on one x, W or b element moves a pre-activation by
    // at most ~1e-3 (|x|, |W| <= 1); keep every one farther than that from the kink at 0.
    float nearest = 1e30f;
    for (float v : ffn.fc1.forward(x).to_vector()) nearest = std::min(nearest, std::fabs(v));
    INFO("smallest |fc1 output| " << nearest);
    REQUIRE(nearest > 0.005f);
  }
  payless::testing::GradCheckOptions small_step;
  small_step.step = 1e-3;
  check_gradients("feed_forward", {x, ffn.fc1.weight, ffn.fc1.bias, ffn.fc2.weight, ffn.fc2.bias},
                  [&](const Inputs& in) { return ffn.forward(in[0], true); }, small_step);
}

TEST_CASE("Embedding: N(0, C^-1/2) with a zero padding row that gets no gradient", "[layers][embedding]") {
  Rng rng(3);
  Embedding emb(500, 64, 1, rng);
  const std::vector<float> w = emb.weight.to_vector();
  double sum_sq = 0;
  for (int64_t c = 0; c < 64; ++c) CHECK(w[64 + c] == 0.0f);  // row 1 = <pad>
  for (float v : w) sum_sq += double(v) * v;
  CHECK(std::sqrt(sum_sq / (499 * 64)) == Approx(1.0 / 8.0).epsilon(0.03));

  IdTensor ids({2, 2}, {5, 1, 1, 7});
  Tensor y = emb.forward(ids);
  REQUIRE(y.shape() == Shape{2, 2, 64});
  CHECK(y.data()[0] == w[5 * 64]);
  CHECK(y.data()[64] == 0.0f);
  backward(sum(y));
  const std::vector<float> g = emb.weight.grad().to_vector();
  CHECK(g[5 * 64] == 1.0f);
  CHECK(g[64] == 0.0f);  // the padding row stays zero through training
  CHECK_THROWS_WITH(Embedding(10, 4, 10), Catch::Contains("padding_idx 10"));
}

TEST_CASE("sinusoidal table equals the spec's golden row (d=8, p=2)", "[layers][positional]") {
  const std::vector<float> golden = {0.909297f, 0.092699f, 0.004309f, 0.000200f,
                                     -0.416147f, 0.995694f, 0.999991f, 1.000000f};
  std::vector<float> row = sinusoidal_row(2, 8);
  REQUIRE(row.size() == 8);
  for (int i = 0; i < 8; ++i) CHECK(row[i] == Approx(golden[i]).margin(1e-6));

  SinusoidalPositionalEmbedding pe(8, /*padding_idx=*/1);
  CHECK(pe.at(2).to_vector() == row);
  CHECK(pe.at(1).to_vector() == std::vector<float>(8, 0.0f));  // the padding row
  // Odd dims keep a trailing zero; beyond the first 1024 rows the table grows on demand.
  std::vector<float> odd = sinusoidal_row(3, 9);
  CHECK(odd[8] == 0.0f);
  CHECK(odd[4] == Approx(std::cos(3.0f)));
  CHECK(pe.at(1500).to_vector() == sinusoidal_row(1500, 8));
  CHECK_THROWS_WITH(SinusoidalPositionalEmbedding(3, 1), Catch::Contains("embedding_dim"));
}

TEST_CASE("positions start at padding_idx+1 and left padding does not shift them", "[layers][positional]") {
  const int32_t pad = 1;
  // Row 0 unpadded, row 1 left-padded by two, row 2 right-padded by one.
  IdTensor tokens({3, 4}, {2, 9, 8, 7, pad, pad, 9, 8, 9, 8, 7, pad});
  IdTensor positions = make_positions(tokens, pad);
  CHECK(positions.values == std::vector<int32_t>{2, 3, 4, 5, 1, 1, 2, 3, 2, 3, 4, 1});

  SinusoidalPositionalEmbedding pe(6, pad);
  Tensor table = pe.forward(tokens);
  REQUIRE(table.shape() == Shape{3, 4, 6});
  const std::vector<float> v = table.to_vector();
  auto row = [&](int b, int t) { return std::vector<float>(v.begin() + (b * 4 + t) * 6, v.begin() + (b * 4 + t + 1) * 6); };
  CHECK(row(1, 2) == row(0, 0));  // the first real token is at position 2 whatever the padding
  CHECK(row(1, 3) == row(0, 1));
  CHECK(row(1, 0) == std::vector<float>(6, 0.0f));
  CHECK(row(0, 3) == sinusoidal_row(5, 6));
  // Incremental decoding: the newest of a prefix of L tokens is at padding_idx + L.
  CHECK(pe.at(pad + 4).to_vector() == row(0, 3));
  CHECK(pe.forward(tokens).requires_grad() == false);
}

TEST_CASE("learned positions: fairseq table size, pad row zero, length checked", "[layers][positional]") {
  LearnedPositionalEmbedding pe(6, 4, /*padding_idx=*/1);
  CHECK(pe.weight.shape() == Shape{6 + 1 + 1, 4});
  CHECK(names_of(pe) == std::vector<std::string>{"weight"});
  IdTensor tokens({1, 6}, {1, 5, 5, 5, 5, 5});
  Tensor y = pe.forward(tokens);
  const std::vector<float> w = pe.weight.to_vector(), out = y.to_vector();
  CHECK(std::vector<float>(out.begin(), out.begin() + 4) == std::vector<float>(4, 0.0f));
  CHECK(std::vector<float>(out.begin() + 4, out.begin() + 8) == std::vector<float>(w.begin() + 8, w.begin() + 12));
  CHECK_THROWS_WITH(pe.forward(IdTensor({1, 7}, std::vector<int32_t>(7, 5))),
                    Catch::Contains("max_positions = 6"));
}

TEST_CASE("parameter counts of one layer equal the formulas of spec 4.8", "[layers][params]") {
  // transformer_iwslt_de_en sizes; small enough to allocate in a test.
  const int64_t d = 512, F = 1024;
  TransformerLayerConfig config;
  config.embed_dim = d, config.ffn_dim = F, config.heads = 4;
  const int64_t attention = 4 * (d * d + d);
  const int64_t ffn = (d * F + F) + (F * d + d);
  TransformerEncoderLayer encoder(config);
  CHECK(encoder.num_parameters() == attention + ffn + 4 * d);
  TransformerDecoderLayer decoder(config);
  CHECK(decoder.num_parameters() == 2 * attention + ffn + 6 * d);
  TransformerDecoderLayer lm_layer(config, /*encoder_attention=*/false);
  CHECK(lm_layer.num_parameters() == attention + ffn + 4 * d);
}

TEST_CASE("Transformer layer parameter names follow the reference", "[layers][params]") {
  TransformerLayerConfig config;
  config.embed_dim = 8, config.ffn_dim = 16, config.heads = 2;
  TransformerDecoderLayer decoder(config);
  const std::vector<std::string> expected = {
      "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
      "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
      "self_attn.out_proj.weight", "self_attn.out_proj.bias", "self_attn_layer_norm.weight",
      "self_attn_layer_norm.bias", "encoder_attn.q_proj.weight", "encoder_attn.q_proj.bias",
      "encoder_attn.k_proj.weight", "encoder_attn.k_proj.bias", "encoder_attn.v_proj.weight",
      "encoder_attn.v_proj.bias", "encoder_attn.out_proj.weight", "encoder_attn.out_proj.bias",
      "encoder_attn_layer_norm.weight", "encoder_attn_layer_norm.bias", "fc1.weight", "fc1.bias",
      "fc2.weight", "fc2.bias", "final_layer_norm.weight", "final_layer_norm.bias"};
  CHECK(names_of(decoder) == expected);
  TransformerEncoderLayer encoder(config);
  std::vector<std::string> names = names_of(encoder);
  CHECK(names.size() == 16);
  CHECK(names[8] == "self_attn_layer_norm.weight");
  CHECK(names[10] == "fc1.weight");
}
