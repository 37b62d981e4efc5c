// Multi-head attention and the Transformer layers: the three truths of spec §5 —
//  1. gradients = finite differences (self, causal, masked, encoder-decoder; both layers, pre and
//     post norm), with the modules' parameters among the checked inputs;
//  2. step-by-step decoding = the full causal forward, also after a beam reorder in the middle;
//  3. our outputs and gradients = PyTorch's (fixtures written by tests/fixtures/
//     make_fixtures_attention.py from torch's own attention and Transformer layers).
// Plus: padding invariance, no NaN from a fully masked row, and argument errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/attention.h"
#include "layers/incremental.h"
#include "layers/transformer_layer.h"
#include "tests/support/compare.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using nlohmann::json;
using Inputs = std::vector<Tensor>;

namespace {

// Every parameter of `m` to uniform(low, high): LayerNorm's 1/0 and zero biases hide bugs.
void randomize(Module& m, uint64_t seed, float low = -0.5f, float high = 0.5f) {
  Rng rng(seed);
  for (auto& [name, t] : m.named_parameters()) {
    Tensor p = t;
    rng.uniform_(p, low, high);
    if (name.find("layer_norm.weight") != std::string::npos)
      for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] += 1.0f;
  }
}

Tensor param(const Module& m, const std::string& name) {
  for (auto& [n, t] : m.named_parameters())
    if (n == name) return t;
  FAIL("no parameter " << name);
  return Tensor();
}

TransformerLayerConfig small_config(bool normalize_before) {
  TransformerLayerConfig c;
  c.embed_dim = 8, c.ffn_dim = 12, c.heads = 2;
  c.dropout = c.attention_dropout = c.relu_dropout = 0.0f;
  c.normalize_before = normalize_before;
  return c;
}

}  // namespace

// ------------------------------------------------------------------------------ gradients

TEST_CASE("attention gradients: self, causal, masked, encoder-decoder", "[layers][attention][gradcheck]") {
  MultiheadAttention mha(8, 2);
  randomize(mha, 1);
  const Tensor x = random_input({2, 4, 8}, 2), encoder_out = random_input({2, 3, 8}, 3);
  const Tensor mask = left_padding_mask({0, 2}, 4), source_mask = left_padding_mask({1, 0}, 3);
  Inputs with_params = {x, param(mha, "q_proj.weight"), param(mha, "q_proj.bias"),
                        param(mha, "k_proj.weight"), param(mha, "v_proj.bias"),
                        param(mha, "out_proj.weight"), param(mha, "out_proj.bias")};
  check_gradients("self-attention with key padding mask", with_params,
                  [&](const Inputs& in) { return mha.forward(in[0], in[0], in[0], mask); });
  check_gradients("causal self-attention", with_params,
                  [&](const Inputs& in) { return mha.forward(in[0], in[0], in[0], Tensor(), true); });
  check_gradients("causal self-attention with key padding mask", {x},
                  [&](const Inputs& in) { return mha.forward(in[0], in[0], in[0], mask, true); });
  check_gradients("encoder-decoder attention", {x, encoder_out, param(mha, "k_proj.bias"), param(mha, "v_proj.weight")},
                  [&](const Inputs& in) { return mha.forward(in[0], in[1], in[1], source_mask); });
}

TEST_CASE("Transformer layer gradients, pre- and post-norm", "[layers][transformer][gradcheck]") {
  const Tensor x = random_input({2, 3, 8}, 4), encoder_out = random_input({2, 4, 8}, 5);
  const Tensor mask = left_padding_mask({0, 1}, 3), source_mask = left_padding_mask({2, 0}, 4);
  for (bool pre : {false, true}) {
    const std::string tag = pre ? " (pre-norm)" : " (post-norm)";
    TransformerEncoderLayer encoder(small_config(pre));
    // Seed chosen so that no ReLU input lies within 0.04 of its kink (seed 6 had one at 0.0009).
    randomize(encoder, 30);
    // A small step: with ReLU inside, a larger one can straddle a kink of some hidden unit.
    const payless::testing::GradCheckOptions fine{/*step=*/1e-3};
    check_gradients("encoder layer" + tag,
                    {x, param(encoder, "self_attn.k_proj.weight"), param(encoder, "self_attn_layer_norm.weight"),
                     param(encoder, "fc1.weight"), param(encoder, "fc2.bias"), param(encoder, "final_layer_norm.bias")},
                    [&](const Inputs& in) { return encoder.forward(in[0], mask); }, fine);
    TransformerDecoderLayer decoder(small_config(pre));
    randomize(decoder, 7);
    check_gradients("decoder layer" + tag,
                    {x, encoder_out, param(decoder, "self_attn.q_proj.weight"),
                     param(decoder, "encoder_attn.v_proj.weight"), param(decoder, "encoder_attn_layer_norm.bias"),
                     param(decoder, "fc2.weight")},
                    [&](const Inputs& in) { return decoder.forward(in[0], in[1], source_mask); }, fine);
    TransformerDecoderLayer lm_layer(small_config(pre), /*encoder_attention=*/false);
    randomize(lm_layer, 8);
    check_gradients("language-model decoder layer" + tag, {x, param(lm_layer, "fc1.bias")},
                    [&](const Inputs& in) { return lm_layer.forward(in[0]); }, fine);
  }
}

// ------------------------------------------------------------------------------ masks

TEST_CASE("masked keys have no influence, and a fully masked row gives no NaN", "[layers][attention]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  Tensor x = random_input({2, 5, 8}, 9);
  Tensor mask = left_padding_mask({0, 2}, 5);
  Tensor y = mha.forward(x, x, x, mask);
  // Change the padded keys/values of row 1; queries of row 1 must not notice. Keys are also
  // queries here, so compare only the real positions.
  Tensor x2 = x.clone_data();
  for (int64_t c = 0; c < 16; ++c) x2.data()[5 * 8 + c] += 3.0f;
  Tensor y2 = mha.forward(x2, x2, x2, mask);
  for (int64_t i = 0; i < 5 * 8; ++i) CHECK(y2.data()[i] == y.data()[i]);
  for (int64_t i = 7 * 8; i < 10 * 8; ++i) CHECK(y2.data()[i] == Approx(y.data()[i]).margin(1e-6));

  Tensor everything = Tensor::ones({2, 5});
  for (float v : mha.forward(x, x, x, everything).to_vector()) CHECK(std::isfinite(v));
}

TEST_CASE("causal attention: outputs do not depend on later positions", "[layers][attention]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  Tensor x = random_input({1, 5, 8}, 10);
  Tensor y = mha.forward(x, x, x, Tensor(), true);
  Tensor x2 = x.clone_data();
  for (int64_t c = 0; c < 8; ++c) x2.data()[3 * 8 + c] -= 2.0f;  // change position 3
  Tensor y2 = mha.forward(x2, x2, x2, Tensor(), true);
  for (int64_t i = 0; i < 3 * 8; ++i) CHECK(y2.data()[i] == y.data()[i]);
  CHECK(y2.data()[3 * 8] != y.data()[3 * 8]);
}

TEST_CASE("encoder layer: real positions do not change when padding is added", "[layers][transformer]") {
  NoGrad no_grad;
  for (bool pre : {false, true}) {
    TransformerEncoderLayer layer(small_config(pre));
    randomize(layer, 11);
    layer.eval();
    Tensor x = random_input({1, 4, 8}, 12);  // one sentence of 4 real tokens, no padding
    Tensor y = layer.forward(x, Tensor::zeros({1, 4}));
    // The same sentence left-padded to 7 with junk in the padded slots.
    Tensor padded = concat({random_input({1, 3, 8}, 13), x}, 1);
    Tensor y_padded = layer.forward(padded, left_padding_mask({3}, 7));
    CHECK(max_abs_diff(narrow(y_padded, 1, 3, 4), y) <= 1e-5f);
  }
}

// ------------------------------------------------------------------------------ incremental

// Feeds x (B, T, C) one step at a time through `step(x_t)`, but after `reorder_at` steps reorders
// the batch with `order` (beam search) and continues with the rows of `after` (B', T, C) from there.
// Returns the stacked step outputs (B', T, C) and the equivalent whole-prefix input (B', T, C).
template <typename Step, typename Reorder>
std::pair<Tensor, Tensor> decode_with_reorder(const Tensor& x, const Tensor& after, int64_t reorder_at,
                                              const std::vector<int64_t>& order, Step step, Reorder reorder) {
  const int64_t T = x.size(1);
  std::vector<Tensor> outputs;
  for (int64_t t = 0; t < reorder_at; ++t) outputs.push_back(step(narrow(x, 1, t, 1)));
  reorder(order);
  for (Tensor& o : outputs) o = reorder_batch(o, order);
  for (int64_t t = reorder_at; t < T; ++t) outputs.push_back(step(narrow(after, 1, t, 1)));
  Tensor prefix = concat({reorder_batch(narrow(x, 1, 0, reorder_at), order),
                          narrow(after, 1, reorder_at, T - reorder_at)}, 1);
  return {concat(outputs, 1), prefix};
}

TEST_CASE("incremental self-attention equals the causal forward, also after a reorder", "[layers][attention][incremental]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  randomize(mha, 14);
  mha.eval();
  Tensor x = random_input({3, 6, 8}, 15);
  SECTION("no reorder") {
    AttentionCache cache;
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 6; ++t) steps.push_back(mha.step_self_attention(narrow(x, 1, t, 1), cache));
    CHECK(cache.length() == 6);
    CHECK(max_abs_diff(concat(steps, 1), mha.forward(x, x, x, Tensor(), true)) <= 1e-5f);
  }
  SECTION("beam reorder after 3 steps") {
    const std::vector<int64_t> order = {2, 0, 0, 1};  // rows repeat and the batch grows
    Tensor after = random_input({4, 6, 8}, 16);
    AttentionCache cache;
    auto [stepped, prefix] = decode_with_reorder(
        x, after, 3, order, [&](const Tensor& xt) { return mha.step_self_attention(xt, cache); },
        [&](const std::vector<int64_t>& o) { cache.reorder(o); });
    CHECK(max_abs_diff(stepped, mha.forward(prefix, prefix, prefix, Tensor(), true)) <= 1e-5f);
  }
  SECTION("several new steps at once, and trim") {
    AttentionCache cache;
    Tensor first = mha.step_self_attention(narrow(x, 1, 0, 2), cache);
    Tensor rest = mha.step_self_attention(narrow(x, 1, 2, 4), cache);
    CHECK(max_abs_diff(concat({first, rest}, 1), mha.forward(x, x, x, Tensor(), true)) <= 1e-5f);
    cache.trim(2);
    CHECK(cache.length() == 2);
    Tensor again = mha.step_self_attention(narrow(x, 1, 2, 4), cache);
    CHECK(max_abs_diff(again, rest) <= 1e-6f);
  }
}

TEST_CASE("self-attention cache: grows past its capacity, and a copy decodes on its own", "[layers][attention][incremental]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  randomize(mha, 26);
  mha.eval();
  const int64_t T = 70;  // past the first capacity (32) and the doubled one (64)
  Tensor x = random_input({2, T, 8}, 27);
  AttentionCache cache;
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 40; ++t) steps.push_back(mha.step_self_attention(narrow(x, 1, t, 1), cache));
  // A copy shares the buffers until one of the two writes: each then continues its own prefix.
  AttentionCache fork = cache;
  Tensor other = random_input({2, 2, 8}, 28);
  std::vector<Tensor> forked = {mha.step_self_attention(narrow(other, 1, 0, 1), fork)};
  for (int64_t t = 40; t < T; ++t) steps.push_back(mha.step_self_attention(narrow(x, 1, t, 1), cache));
  forked.push_back(mha.step_self_attention(narrow(other, 1, 1, 1), fork));  // after cache's writes
  CHECK(cache.length() == T);
  CHECK(fork.length() == 42);
  CHECK(max_abs_diff(concat(steps, 1), mha.forward(x, x, x, Tensor(), true)) <= 1e-5f);
  Tensor fork_prefix = concat({narrow(x, 1, 0, 40), other}, 1);
  Tensor fork_full = mha.forward(fork_prefix, fork_prefix, fork_prefix, Tensor(), true);
  CHECK(max_abs_diff(concat(forked, 1), narrow(fork_full, 1, 40, 2)) <= 1e-5f);
}

TEST_CASE("incremental encoder-decoder attention reuses the projected source", "[layers][attention][incremental]") {
  NoGrad no_grad;
  MultiheadAttention mha(8, 2);
  randomize(mha, 17);
  Tensor x = random_input({2, 3, 8}, 18), encoder_out = random_input({2, 4, 8}, 19);
  Tensor mask = left_padding_mask({1, 0}, 4);
  Tensor full = mha.forward(x, encoder_out, encoder_out, mask);
  AttentionCache cache;
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 3; ++t)
    steps.push_back(mha.step_encoder_attention(narrow(x, 1, t, 1), encoder_out, mask, cache));
  CHECK(max_abs_diff(concat(steps, 1), full) <= 1e-5f);
  // A reordered cache matches a reordered source (the encoder output is not re-read).
  cache.reorder({1, 1, 0});
  Tensor x3 = random_input({3, 1, 8}, 20);
  Tensor step = mha.step_encoder_attention(x3, Tensor(), Tensor(), cache);
  Tensor source = reorder_batch(encoder_out, {1, 1, 0});
  CHECK(max_abs_diff(step, mha.forward(x3, source, source, reorder_batch(mask, {1, 1, 0}))) <= 1e-5f);
}

TEST_CASE("incremental decoder layer equals the full forward, also after a reorder", "[layers][transformer][incremental]") {
  NoGrad no_grad;
  for (bool pre : {false, true}) {
    TransformerDecoderLayer layer(small_config(pre));
    randomize(layer, 21);
    layer.eval();
    Tensor x = random_input({2, 5, 8}, 22), encoder_out = random_input({2, 4, 8}, 23);
    Tensor mask = left_padding_mask({0, 2}, 4);
    const std::vector<int64_t> order = {1, 0, 1};
    Tensor after = random_input({3, 5, 8}, 24);
    TransformerDecoderLayerState state;
    auto [stepped, prefix] = decode_with_reorder(
        x, after, 2, order,
        [&](const Tensor& xt) { return layer.step(xt, encoder_out, mask, state); },
        [&](const std::vector<int64_t>& o) { state.reorder(o); });
    Tensor full = layer.forward(prefix, reorder_batch(encoder_out, order), reorder_batch(mask, order));
    INFO("normalize_before " << pre);
    CHECK(max_abs_diff(stepped, full) <= 1e-5f);

    TransformerDecoderLayer lm_layer(small_config(pre), false);
    randomize(lm_layer, 25);
    TransformerDecoderLayerState lm_state;
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 5; ++t) steps.push_back(lm_layer.step(narrow(x, 1, t, 1), Tensor(), Tensor(), lm_state));
    CHECK(max_abs_diff(concat(steps, 1), lm_layer.forward(x)) <= 1e-5f);
  }
}

// ------------------------------------------------------------------------------ errors

TEST_CASE("attention and layer argument errors name what was expected", "[layers][attention][errors]") {
  CHECK_THROWS_WITH(MultiheadAttention(10, 3), Catch::Contains("not divisible"));
  MultiheadAttention mha(8, 2);
  Tensor x = Tensor::zeros({2, 3, 8});
  CHECK_THROWS_WITH(mha.forward(Tensor::zeros({2, 3, 6}), x, x), Catch::Contains("query") && Catch::Contains("[2, 3, 6]"));
  CHECK_THROWS_WITH(mha.forward(x, x, x, Tensor::zeros({2, 4})), Catch::Contains("key_padding_mask"));
  AttentionCache cache;
  mha.step_self_attention(Tensor::zeros({2, 1, 8}), cache);
  CHECK_THROWS_WITH(mha.step_self_attention(Tensor::zeros({3, 1, 8}), cache), Catch::Contains("reorder"));
  CHECK_THROWS_WITH(reorder_batch(x, {0, 2}), Catch::Contains("index 2"));
  TransformerDecoderLayer lm_layer(small_config(false), false);
  CHECK_THROWS_WITH(lm_layer.forward(x, x), Catch::Contains("without encoder attention"));
  TransformerDecoderLayer decoder(small_config(false));
  CHECK_THROWS_WITH(decoder.forward(x), Catch::Contains("no encoder_out"));
}

// ------------------------------------------------------------------------------ PyTorch fixtures

TEST_CASE("attention matches PyTorch (fixtures)", "[layers][attention][fixtures]") {
  for (const char* name : {"mha_self", "mha_self_causal", "mha_encdec"}) {
    INFO("fixture " << name);
    json fixture = load_fixture(name);
    const json& c = fixture.at("config");
    MultiheadAttention mha(c.at("C").get<int64_t>(), c.at("H").get<int64_t>());
    auto inputs = inputs_of(fixture);
    const json& masks = fixture.at("masks");
    Tensor mask = masks.contains("key_padding_mask")       ? tensor_from(masks.at("key_padding_mask"))
                  : masks.contains("encoder_padding_mask") ? tensor_from(masks.at("encoder_padding_mask"))
                                                           : Tensor();
    const bool causal = c.at("causal").get<bool>();
    compare_with_fixture(fixture, mha, inputs, [&]() {
      Tensor& x = inputs.at("x");
      Tensor& kv = inputs.count("encoder_out") ? inputs.at("encoder_out") : x;
      return mha.forward(x, kv, kv, mask, causal);
    });
  }
}

TEST_CASE("Transformer layers match PyTorch (fixtures)", "[layers][transformer][fixtures]") {
  auto config_of = [](const json& c) {
    TransformerLayerConfig config = small_config(c.at("normalize_before").get<bool>());
    config.embed_dim = c.at("C").get<int64_t>();
    config.ffn_dim = c.at("F").get<int64_t>();
    config.heads = c.at("H").get<int64_t>();
    return config;
  };
  SECTION("encoder layer, post-norm") {
    json fixture = load_fixture("transformer_encoder_layer");
    TransformerEncoderLayer layer(config_of(fixture.at("config")));
    auto inputs = inputs_of(fixture);
    Tensor mask = tensor_from(fixture.at("masks").at("padding_mask"));
    compare_with_fixture(fixture, layer, inputs, [&]() { return layer.forward(inputs.at("x"), mask); });
  }
  SECTION("decoder layer with encoder attention, pre-norm") {
    json fixture = load_fixture("transformer_decoder_layer");
    TransformerDecoderLayer layer(config_of(fixture.at("config")));
    auto inputs = inputs_of(fixture);
    Tensor mask = tensor_from(fixture.at("masks").at("encoder_padding_mask"));
    compare_with_fixture(fixture, layer, inputs,
                         [&]() { return layer.forward(inputs.at("x"), inputs.at("encoder_out"), mask); });
  }
}

TEST_CASE("dropout acts only in training mode", "[layers][transformer][dropout]") {
  NoGrad no_grad;
  TransformerLayerConfig config = small_config(false);
  config.dropout = config.attention_dropout = config.relu_dropout = 0.3f;
  TransformerDecoderLayer layer(config);
  Tensor x = random_input({2, 3, 8}, 26), encoder_out = random_input({2, 4, 8}, 27);
  Tensor a = layer.forward(x, encoder_out), b = layer.forward(x, encoder_out);
  CHECK(max_abs_diff(a, b) > 1e-3f);  // each call draws fresh masks
  layer.eval();
  Tensor c = layer.forward(x, encoder_out), d = layer.forward(x, encoder_out);
  CHECK(c.to_vector() == d.to_vector());
  // In eval mode the layer is the same function as one built without dropout.
  TransformerDecoderLayer plain(small_config(false));
  NamedTensors from = layer.named_parameters(), to = plain.named_parameters();
  for (size_t i = 0; i < from.size(); ++i) {
    Tensor dst = to[i].second;
    std::copy(from[i].second.data(), from[i].second.data() + dst.numel(), dst.data());
  }
  CHECK(max_abs_diff(plain.forward(x, encoder_out), c) <= 1e-6f);
}
