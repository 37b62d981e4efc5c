// The translator: encoder stack, TranslationModel (gradients, embedding sharing, parameter counts
// of the reference's presets), incremental decoding against the full forward, beam search on
// hand-made probability tables whose answers are worked out by hand, padding invariance, and the
// checkpoint loader. Models here are tiny (d = 16, 2 + 2 layers, V = 20) so the group runs in
// about a second, apart from building the three IWSLT-sized models for their parameter counts.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <unistd.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/serialize.h"
#include "layers/incremental.h"
#include "models/beam_search.h"
#include "models/checkpoint_io.h"
#include "models/translation_model.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using payless::testing::check_gradients;

namespace {

constexpr int64_t kVocab = 20;
const std::vector<std::string> kBlocks = {"dynamic", "lightweight", "transformer"};

ModelConfig tiny_config(const std::string& block) {
  ModelConfig c = model_preset("mt_dynamic_small");  // arch stays a known preset name
  for (StackConfig* s : {&c.encoder, &c.decoder}) {
    s->block = block;
    s->embed_dim = 16;
    s->ffn_dim = 32;
    s->layers = 2;
    s->heads = 2;
    s->glu = block == "dynamic";  // GLU on one conv type, off on the other
  }
  c.encoder.kernel_sizes = {3, 5};
  c.decoder.kernel_sizes = {3, 4};
  c.source_vocab = c.target_vocab = kVocab;
  c.share_all_embeddings = false;
  c.share_decoder_input_output_embed = false;
  return c;
}

// Layer norms start at 1/0 and biases at 0; moving them off those values makes the checks see
// every parameter at work.
void perturb(Module& m, uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, t] : m.named_parameters()) {
    Tensor noise = Tensor::empty(t.shape());
    rng.uniform_(noise, -0.1f, 0.1f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += noise.data()[i];
  }
}

std::unique_ptr<TranslationModel> tiny_model(const ModelConfig& c, uint64_t seed = 11) {
  Rng rng(seed);
  auto m = std::make_unique<TranslationModel>(c, rng);
  perturb(*m, seed + 1);
  m->eval();
  return m;
}

// Rows of ids (without </s>) -> the right-padded decoder input [</s>, y...] and target [y..., </s>].
Batch make_batch(const std::vector<std::vector<int32_t>>& sources, const std::vector<std::vector<int32_t>>& targets) {
  Batch b;
  b.source = make_source_batch(sources);
  const int64_t B = static_cast<int64_t>(targets.size());
  int64_t T = 0;
  for (const auto& t : targets) T = std::max<int64_t>(T, static_cast<int64_t>(t.size()) + 1);
  std::vector<int32_t> input(B * T, kPadId), target(B * T, kPadId);
  for (int64_t r = 0; r < B; ++r) {
    const auto& y = targets[r];
    input[r * T] = kEosId;
    for (size_t i = 0; i < y.size(); ++i) {
      input[r * T + i + 1] = y[i];
      target[r * T + i] = y[i];
    }
    target[r * T + y.size()] = kEosId;
    b.target_tokens += static_cast<int64_t>(y.size()) + 1;
  }
  b.decoder_input = IdTensor(Shape{B, T}, input);
  b.target = IdTensor(Shape{B, T}, target);
  return b;
}

const std::vector<std::vector<int32_t>> kSources = {{5, 6, 7, 8, 9, 10}, {11, 12}, {13, 4, 15, 16}};
const std::vector<std::vector<int32_t>> kTargets = {{7, 8, 9}, {10, 11, 12, 13, 14}, {15}};

// ---- a StepScorer from a table of probabilities, for beam search with known answers

using Table = std::function<std::vector<double>(const std::vector<int32_t>& prefix)>;

class TableScorer : public StepScorer {
 public:
  // One row per sentence to start with; `tables[i]` gives sentence i's next-token probabilities
  // after a prefix of generated tokens.
  TableScorer(int64_t V, std::vector<Table> tables) : V_(V), tables_(std::move(tables)) {
    for (size_t i = 0; i < tables_.size(); ++i) rows_.push_back({static_cast<int64_t>(i), {}, false});
  }
  int64_t vocab_size() const override { return V_; }
  Tensor step(const std::vector<int32_t>& tokens) override {
    REQUIRE(tokens.size() == rows_.size());
    rows_per_step.push_back(static_cast<int64_t>(tokens.size()));
    Tensor out = Tensor::empty({static_cast<int64_t>(tokens.size()), V_});
    for (size_t r = 0; r < rows_.size(); ++r) {
      Row& row = rows_[r];
      if (row.started) row.prefix.push_back(tokens[r]);
      else REQUIRE(tokens[r] == kEosId);  // every hypothesis starts from </s>
      row.started = true;
      std::vector<double> p = tables_[row.sentence](row.prefix);
      REQUIRE(static_cast<int64_t>(p.size()) == V_);
      double total = 0;
      for (double x : p) total += x;
      for (int64_t v = 0; v < V_; ++v) out.data()[r * V_ + v] = static_cast<float>(std::log(p[v] / total));
    }
    return out;
  }
  void reorder(const std::vector<int64_t>& order) override {
    std::vector<Row> next;
    for (int64_t i : order) next.push_back(rows_.at(i));
    rows_ = std::move(next);
  }
  std::vector<int64_t> rows_per_step;

 private:
  struct Row {
    int64_t sentence;
    std::vector<int32_t> prefix;
    bool started;
  };
  int64_t V_;
  std::vector<Table> tables_;
  std::vector<Row> rows_;
};

constexpr int64_t kTableVocab = 10;  // specials 0-3, words 4-9
constexpr int32_t A = 4, Bt = 5, Ct = 6, D = 7;

// Probabilities: the listed tokens get their weight, every other token 1e-4.
std::vector<double> dist(std::initializer_list<std::pair<int32_t, double>> weights) {
  std::vector<double> p(kTableVocab, 1e-4);
  for (auto [token, w] : weights) p[token] = w;
  return p;
}

std::vector<std::vector<Hypothesis>> search_table(const std::vector<Table>& tables, const BeamSearchOptions& o,
                                                  std::vector<int64_t> lengths = {}) {
  if (lengths.empty()) lengths.assign(tables.size(), 5);
  TableScorer scorer(kTableVocab, tables);
  return beam_search(scorer, lengths, o);
}

std::vector<int32_t> ids(std::initializer_list<int32_t> l) { return l; }

// Greedy decoding written independently of beam_search: argmax of the next-token scores (never
// <pad>; </s> only from min_len on, and forced at max_len), fed back until </s>.
std::vector<int32_t> greedy(const std::function<std::vector<float>(const std::vector<int32_t>&)>& next_lprobs,
                            int64_t max_len, int64_t min_len) {
  std::vector<int32_t> out;
  for (int64_t step = 0;; ++step) {
    if (step >= max_len) {
      out.push_back(kEosId);
      return out;
    }
    std::vector<float> lp = next_lprobs(out);
    int32_t best = -1;
    for (int32_t v = 0; v < static_cast<int32_t>(lp.size()); ++v) {
      if (v == kPadId || (v == kEosId && step < min_len)) continue;
      if (best < 0 || lp[v] > lp[best]) best = v;
    }
    out.push_back(best);
    if (best == kEosId) return out;
  }
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("payless_translation_" + std::to_string(getpid()) + "_" + name))
      .string();
}

}  // namespace

// ------------------------------------------------------------------------------------ the model

TEST_CASE("translation model: parameter names and embedding sharing", "[translation]") {
  ModelConfig c = tiny_config("dynamic");
  auto names = [](const TranslationModel& m) {
    std::map<std::string, Shape> out;
    for (auto& [name, t] : m.named_parameters()) out[name] = t.shape();
    return out;
  };
  {
    auto m = tiny_model(c);
    auto n = names(*m);
    CHECK(n.count("encoder.embed_tokens.weight"));
    CHECK(n.count("decoder.embed_tokens.weight"));
    CHECK(n.count("decoder.output_projection.weight"));
    CHECK(n.count("encoder.layers.1.conv.weight_linear.weight"));
    CHECK(n.count("encoder.layers.0.layer_norm2.bias"));
    CHECK(n.count("decoder.layers.1.encoder_attn.k_proj.weight"));
    CHECK(n.count("decoder.layers.0.encoder_attn_layer_norm.weight"));
    CHECK(n.count("encoder.layer_norm.weight") == 0);  // post-norm: no final LayerNorm
    CHECK(m->num_parameters() == count_parameters(c));
  }
  {
    ModelConfig shared = c;
    shared.share_all_embeddings = true;
    auto m = tiny_model(shared);
    auto n = names(*m);
    CHECK(n.count("encoder.embed_tokens.weight"));
    CHECK(n.count("decoder.embed_tokens.weight") == 0);  // the same tensor, listed once
    CHECK(n.count("decoder.output_projection.weight") == 0);
    CHECK(m->config().share_decoder_input_output_embed);
  }
  {
    ModelConfig pre = c;
    pre.encoder.normalize_before = pre.decoder.normalize_before = true;
    auto n = names(*tiny_model(pre));
    CHECK(n.count("encoder.layer_norm.weight"));
    CHECK(n.count("decoder.layer_norm.weight"));
  }
  // A joined embedding needs one vocabulary.
  ModelConfig bad = c;
  bad.share_all_embeddings = true;
  bad.source_vocab = 24;
  CHECK_THROWS_WITH(build_model(bad, 1), Catch::Contains("joined"));
  ModelConfig no_vocab = c;
  no_vocab.source_vocab = 0;
  CHECK_THROWS_WITH(build_model(no_vocab, 1), Catch::Contains("source_vocab"));
  ModelConfig dims = c;
  dims.decoder.embed_dim = 32;
  CHECK_THROWS_WITH(build_model(dims, 1), Catch::Contains("embed_dim"));
}

TEST_CASE("translation model: gradients of the loss for each block type", "[translation]") {
  Batch batch = make_batch(kSources, kTargets);
  for (const std::string& block : kBlocks) {
    ModelConfig c = tiny_config(block);
    // Exercise each sharing mode once: gradients from several uses must add up.
    if (block == "dynamic") c.share_all_embeddings = true;
    if (block == "transformer") c.share_decoder_input_output_embed = true;
    auto model = tiny_model(c, 21);
    std::vector<Tensor> inputs;
    std::vector<std::string> picked;
    for (auto& [name, t] : model->named_parameters()) {
      for (const char* want : {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                               "decoder.output_projection.weight", "encoder.layers.0.linear1.weight",
                               "encoder.layers.1.conv.", "encoder.layers.0.self_attn.k_proj.weight",
                               "encoder.layers.1.layer_norm2.weight", "encoder.layers.1.final_layer_norm.bias",
                               "decoder.layers.0.conv.", "decoder.layers.0.self_attn.v_proj.weight",
                               "decoder.layers.1.encoder_attn.k_proj.weight", "decoder.layers.1.fc2.weight"}) {
        if (name.rfind(want, 0) == 0) {
          inputs.push_back(t);
          picked.push_back(name);
        }
      }
    }
    INFO(block << ": checking " << picked.size() << " parameters");
    REQUIRE(inputs.size() >= 6);
    testing::GradCheckOptions options;
    options.max_elements = 12;
    options.step = 1e-2;
    check_gradients("translation loss, " + block, inputs, [&](const std::vector<Tensor>&) {
      return model->loss(batch, 0.1f, SmoothingVariant::kCurrent).loss;
    }, options);
  }
}

TEST_CASE("encoder: real positions do not depend on the batch's left padding", "[translation]") {
  for (const std::string& block : kBlocks) {
    INFO(block);
    auto model = tiny_model(tiny_config(block));
    NoGrad no_grad;
    EncoderOutput alone = model->encode(make_source_batch({kSources[1]}));  // (1, 3, d), no padding
    CHECK_FALSE(alone.padding_mask.defined());
    EncoderOutput batched = model->encode(make_source_batch(kSources));     // (3, 7, d)
    REQUIRE(batched.padding_mask.defined());
    const int64_t S = batched.out.size(1), d = 16, n = 3;
    for (int64_t t = 0; t < S; ++t)  // row 1 is [pad × 4, 11, 12, </s>]
      CHECK(batched.padding_mask.data()[1 * S + t] == (t < S - n ? 1.0f : 0.0f));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < d; ++c)
        CHECK(batched.out.data()[(1 * S + S - n + t) * d + c] == Approx(alone.out.data()[t * d + c]).margin(1e-5));
  }
}

TEST_CASE("incremental decoding equals the full forward, with padded sources and beam reorders",
          "[translation]") {
  for (const std::string& block : kBlocks) {
    INFO(block);
    auto model = tiny_model(tiny_config(block));
    TranslationScorer scorer(*model, make_source_batch(kSources));
    // Rows follow the scorer: which source each row translates and the tokens it was fed.
    std::vector<int64_t> row_source = {0, 1, 2};
    std::vector<std::vector<int32_t>> fed(3);
    auto apply = [&](const std::vector<int64_t>& order) {
      scorer.reorder(order);
      std::vector<int64_t> s;
      std::vector<std::vector<int32_t>> f;
      for (int64_t i : order) s.push_back(row_source[i]), f.push_back(fed[i]);
      row_source = s, fed = f;
    };
    apply({0, 1, 2, 1});  // expand before the first step, as beam search does
    const int32_t stream[6][4] = {{kEosId, kEosId, kEosId, kEosId}, {5, 9, 12, 17}, {6, 6, 4, 19},
                                  {7, 10, 11, 8}, {14, 13, 16, 4}, {9, 8, 7, 6}};
    for (int step = 0; step < 6; ++step) {
      if (step == 2) apply({3, 0, 0, 2});  // rows repeat and one is dropped
      if (step == 4) apply({1, 2});        // finished sentences leave the batch
      std::vector<int32_t> tokens;
      for (size_t r = 0; r < fed.size(); ++r) {
        tokens.push_back(stream[step][r]);
        fed[r].push_back(stream[step][r]);
      }
      Tensor lp = scorer.step(tokens);  // (N, V)
      // Teacher-forced forward of the same prefixes with the same sources.
      std::vector<std::vector<int32_t>> sources;
      for (int64_t s : row_source) sources.push_back(kSources[s]);
      const int64_t N = static_cast<int64_t>(fed.size()), T = step + 1;
      std::vector<int32_t> prefix;
      for (const auto& f : fed) prefix.insert(prefix.end(), f.begin(), f.end());
      Batch b;
      b.source = make_source_batch(sources);
      b.decoder_input = IdTensor(Shape{N, T}, prefix);
      NoGrad no_grad;
      Tensor full = log_softmax(model->forward(b));  // (N, T, V)
      for (int64_t r = 0; r < N; ++r)
        for (int64_t v = 0; v < kVocab; ++v)
          CHECK(lp.data()[r * kVocab + v] == Approx(full.data()[(r * T + T - 1) * kVocab + v]).margin(1e-4));
    }
  }
}

// ------------------------------------------------------------------------------------ beam search

TEST_CASE("beam search finds the better path that greedy misses", "[translation][beam]") {
  // greedy: a (0.5) then c (0.35) then </s>:  0.5·0.35·0.9 = 0.1575 over 3 tokens
  // beam 2:  b (0.4) then </s> (0.9):          0.36 over 2 tokens, better by any length penalty
  Table t = [](const std::vector<int32_t>& p) {
    if (p.empty()) return dist({{A, 0.5}, {Bt, 0.4}, {kEosId, 0.05}});
    if (p == ids({A})) return dist({{Ct, 0.35}, {D, 0.33}, {kEosId, 0.3}});
    if (p == ids({Bt})) return dist({{kEosId, 0.9}, {Ct, 0.1}});
    return dist({{kEosId, 0.9}});
  };
  BeamSearchOptions o;
  o.beam = 1;
  CHECK(search_table({t}, o)[0][0].tokens == ids({A, Ct, kEosId}));
  o.beam = 2;
  auto best = search_table({t}, o)[0];
  REQUIRE(best.size() == 1);
  CHECK(best[0].tokens == ids({Bt, kEosId}));
  // Score = Σ log p / len^α with the probabilities renormalised as the scorer does.
  const double total0 = 0.5 + 0.4 + 0.05 + 7 * 1e-4, total_b = 0.9 + 0.1 + 8 * 1e-4;
  const double logp = std::log(0.4 / total0) + std::log(0.9 / total_b);
  CHECK(best[0].score == Approx(logp / 2.0).epsilon(1e-5));
  CHECK(best[0].positional_scores[0] == Approx(std::log(0.4 / total0)).epsilon(1e-5));
  CHECK(best[0].positional_scores[1] == Approx(std::log(0.9 / total_b)).epsilon(1e-5));

  // n-best: both finalised hypotheses, best first.
  o.nbest = 2;
  auto two = search_table({t}, o)[0];
  REQUIRE(two.size() == 2);
  CHECK(two[0].tokens == ids({Bt, kEosId}));
  CHECK(two[1].score <= two[0].score);
  for (const Hypothesis& h : two) {
    double sum = 0;
    for (float s : h.positional_scores) sum += s;
    CHECK(h.score == Approx(sum / static_cast<double>(h.tokens.size())).epsilon(1e-5));
  }
  o.nbest = 3;
  CHECK_THROWS_WITH(search_table({t}, o), Catch::Contains("nbest"));
}

TEST_CASE("beam search: a </s> ranked below the first beam candidates does not finish", "[translation][beam]") {
  // beam 1 takes 2 candidates. After [a], </s> ranks second (0.3 < 0.6): the reference finalises
  // only </s> among the first beam candidates, so the search goes on with c.
  Table t = [](const std::vector<int32_t>& p) {
    if (p.empty()) return dist({{A, 0.9}});
    if (p == ids({A})) return dist({{Ct, 0.6}, {kEosId, 0.3}});
    return dist({{kEosId, 0.9}});
  };
  BeamSearchOptions o;
  o.beam = 1;
  CHECK(search_table({t}, o)[0][0].tokens == ids({A, Ct, kEosId}));
}

TEST_CASE("beam search: the length penalty's sign", "[translation][beam]") {
  // short = [x </s>], long = [y z </s>]. After renormalising the table (as the scorer does) the
  // sums of log-probabilities are about -0.644 and -0.750: short wins at α = 0 and 0.25
  // (-0.541 vs -0.570), long at α = 1 (-0.322 vs -0.250) and α = 2.
  Table t = [](const std::vector<int32_t>& p) {
    if (p.empty()) return dist({{A, 0.5}, {Bt, 0.45}});
    if (p == ids({A})) return dist({{kEosId, 0.9}});
    if (p == ids({Bt})) return dist({{Ct, 0.9}});
    return dist({{kEosId, 0.9}});
  };
  const double z0 = 0.95 + 8e-4, z1 = 0.9 + 9e-4;
  const double short_sum = std::log(0.5 / z0) + std::log(0.9 / z1);
  const double long_sum = std::log(0.45 / z0) + 2 * std::log(0.9 / z1);
  BeamSearchOptions o;
  o.beam = 2;
  for (float alpha : {0.0f, 0.25f, 1.0f, 2.0f}) {
    INFO("lenpen " << alpha);
    o.lenpen = alpha;
    const bool short_wins = short_sum / std::pow(2.0, alpha) > long_sum / std::pow(3.0, alpha);
    CHECK(short_wins == (alpha < 0.5f));
    auto best = search_table({t}, o)[0][0];
    CHECK(best.tokens == (short_wins ? ids({A, kEosId}) : ids({Bt, Ct, kEosId})));
    CHECK(best.score == Approx((short_wins ? short_sum / std::pow(2.0, alpha) : long_sum / std::pow(3.0, alpha)))
                            .epsilon(1e-5));
  }
}

TEST_CASE("beam search: min_len forbids an early </s>, max_len forces one", "[translation][beam]") {
  Table eager = [](const std::vector<int32_t>&) { return dist({{kEosId, 0.9}, {A, 0.05}, {Bt, 0.04}}); };
  for (int64_t beam : {1, 3}) {
    INFO("beam " << beam);
    BeamSearchOptions o;
    o.beam = beam;
    o.min_len = 0;
    CHECK(search_table({eager}, o)[0][0].tokens == ids({kEosId}));
    o.min_len = 1;  // the reference's default
    CHECK(search_table({eager}, o)[0][0].tokens == ids({A, kEosId}));
    o.min_len = 3;
    CHECK(search_table({eager}, o)[0][0].tokens == ids({A, A, A, kEosId}));
  }
  Table reluctant = [](const std::vector<int32_t>&) { return dist({{A, 0.6}, {Bt, 0.3}, {kEosId, 1e-6}}); };
  for (int64_t beam : {1, 3}) {
    INFO("beam " << beam);
    BeamSearchOptions o;
    o.beam = beam;
    o.max_len_a = 0;
    o.max_len_b = 3;
    CHECK(search_table({reluctant}, o)[0][0].tokens == ids({A, A, A, kEosId}));
    // a·S + b per sentence, S with </s>: lengths 2 and 5 -> at most 2 and 5 tokens before </s>.
    o.max_len_a = 1;
    o.max_len_b = 0;
    auto r = search_table({reluctant, reluctant}, o, {2, 5});
    CHECK(r[0][0].tokens.size() == 3);
    CHECK(r[1][0].tokens.size() == 6);
    CHECK(r[1][0].tokens.back() == kEosId);
    // and by the decoder's positions
    o.max_len_b = 100;
    o.max_positions = 5;
    CHECK(search_table({reluctant}, o)[0][0].tokens.size() == 5);
  }
  CHECK(max_output_length(10, BeamSearchOptions{}) == 200);
  BeamSearchOptions mt;
  mt.max_len_a = 1.2;
  mt.max_len_b = 10;
  CHECK(max_output_length(15, mt) == 28);
}

TEST_CASE("beam search: finished sentences leave the batch", "[translation][beam]") {
  Table quick = [](const std::vector<int32_t>& p) {
    return p.empty() ? dist({{A, 0.9}}) : dist({{kEosId, 0.9}, {Bt, 0.05}});
  };
  Table slow = [](const std::vector<int32_t>& p) {
    return p.size() < 4 ? dist({{Ct, 0.9}, {D, 0.05}}) : dist({{kEosId, 0.9}});
  };
  BeamSearchOptions o;
  o.beam = 2;
  TableScorer scorer(kTableVocab, {quick, slow});
  auto r = beam_search(scorer, {5, 5}, o);
  CHECK(r[0][0].tokens == ids({A, kEosId}));
  CHECK(r[1][0].tokens == ids({Ct, Ct, Ct, Ct, kEosId}));
  // Steps 0-2 run both sentences (the quick one needs two finals: [A </s>] at step 1 and a
  // second at step 2); then only the slow one's two rows remain.
  REQUIRE(scorer.rows_per_step.size() >= 4);
  CHECK(scorer.rows_per_step[0] == 4);
  CHECK(scorer.rows_per_step.back() == 2);
}

TEST_CASE("beam 1 is greedy decoding", "[translation][beam]") {
  // A table of deterministic pseudo-random distributions with a fair chance of </s>.
  Table noisy = [](const std::vector<int32_t>& p) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t : p) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
    std::vector<double> out(kTableVocab);
    for (int64_t v = 0; v < kTableVocab; ++v) out[v] = 0.05 + uniform01(h, 0, v);
    out[kEosId] *= 0.6;
    return out;
  };
  for (int64_t min_len : {0, 1, 2}) {
    BeamSearchOptions o;
    o.beam = 1;
    o.lenpen = 0.0f;
    o.min_len = min_len;
    o.max_len_b = 12;
    auto next = [&](const std::vector<int32_t>& prefix) {
      std::vector<double> p = noisy(prefix);
      std::vector<float> lp;
      for (double x : p) lp.push_back(static_cast<float>(std::log(x)));
      return lp;
    };
    CHECK(search_table({noisy}, o)[0][0].tokens == greedy(next, 12, min_len));
  }
  // And on a real model, against greedy over the full forward.
  for (const std::string& block : kBlocks) {
    INFO(block);
    auto model = tiny_model(tiny_config(block), 31);
    BeamSearchOptions o;
    o.beam = 1;
    o.max_len_a = 1;
    o.max_len_b = 2;
    auto found = translate(*model, kSources, o, 2);
    for (size_t s = 0; s < kSources.size(); ++s) {
      auto next = [&](const std::vector<int32_t>& prefix) {
        Batch b;
        b.source = make_source_batch({kSources[s]});
        std::vector<int32_t> input = {kEosId};
        input.insert(input.end(), prefix.begin(), prefix.end());
        const int64_t T = static_cast<int64_t>(input.size());
        b.decoder_input = IdTensor(Shape{1, T}, input);
        NoGrad no_grad;
        Tensor logits = model->forward(b);
        return std::vector<float>(logits.data() + (T - 1) * kVocab, logits.data() + T * kVocab);
      };
      const int64_t S = static_cast<int64_t>(kSources[s].size()) + 1;
      CHECK(found[s][0].tokens == greedy(next, max_output_length(S, o), o.min_len));
    }
  }
}

TEST_CASE("translation does not depend on the other sentences in the batch", "[translation][beam]") {
  for (const std::string& block : kBlocks) {
    INFO(block);
    auto model = tiny_model(tiny_config(block), 41);
    BeamSearchOptions o;
    o.beam = 3;
    o.nbest = 3;
    o.max_len_a = 1.2;
    o.max_len_b = 3;
    auto together = translate(*model, kSources, o, 8);
    for (size_t s = 0; s < kSources.size(); ++s) {
      auto alone = translate(*model, {kSources[s]}, o, 1);
      REQUIRE(alone[0].size() == together[s].size());
      for (size_t h = 0; h < alone[0].size(); ++h) {
        CHECK(alone[0][h].tokens == together[s][h].tokens);
        CHECK(alone[0][h].score == Approx(together[s][h].score).margin(1e-5));
      }
    }
  }
}

// ------------------------------------------------------------------------------------ counts, loading

TEST_CASE("parameter counts of the reference's translation models (spec 4.8)", "[translation][count]") {
  // count_parameters agrees with the built model over the variants it has to handle.
  for (const std::string& block : kBlocks)
    for (int variant = 0; variant < 5; ++variant) {
      ModelConfig c = tiny_config(block);
      c.decoder.glu = c.encoder.glu = variant % 2 == 0;
      c.share_all_embeddings = variant == 1;
      c.share_decoder_input_output_embed = variant == 2;
      c.encoder.normalize_before = c.decoder.normalize_before = variant == 3;
      c.encoder.learned_pos = variant == 4;
      c.encoder.conv_dim = variant == 4 ? 8 : 0;
      c.target_vocab = variant == 1 ? kVocab : 24;
      INFO(block << " variant " << variant);
      CHECK(build_model(c, 1)->num_parameters() == count_parameters(c));
      ModelConfig lm = c;
      lm.task = "lm";
      lm.share_all_embeddings = false;
      CHECK(build_model(lm, 1)->num_parameters() == count_parameters(lm));
    }

  // IWSLT De-En (V_de = 8848, V_en = 6632, output not shared): built for real.
  auto iwslt = [](const std::string& arch, const std::string& block) {
    ModelConfig c = model_preset(arch);
    if (!block.empty()) c.encoder.block = c.decoder.block = block;
    c.source_vocab = 8848;
    c.target_vocab = 6632;
    return c;
  };
  ModelConfig dyn = iwslt("lightconv_iwslt_de_en", "");
  ModelConfig light = iwslt("lightconv_iwslt_de_en", "lightweight");
  ModelConfig trans = iwslt("transformer_iwslt_de_en", "");
  CHECK(dyn.encoder.block == "dynamic");
  CHECK(trans.share_decoder_input_output_embed);
  CHECK(build_model(dyn, 1)->num_parameters() == 38685184);
  CHECK(build_model(light, 1)->num_parameters() == 38139436);
  CHECK(build_model(trans, 1)->num_parameters() == 39469056);

  // The CPU-sized translators on the shipped Es-En data (joined vocabulary 9,840): the three differ
  // only in the block; the Transformer's extra 2·d² weights per layer (q, k, v, out against the
  // conv block's two linears) are most of what separates it from the conv models.
  auto small = [](const std::string& arch) {
    ModelConfig c = model_preset(arch);
    c.source_vocab = c.target_vocab = 9840;
    return count_parameters(c);
  };
  CHECK(small("mt_dynamic_small") == 5734400);
  CHECK(small("mt_lightweight_small") == 5683400);
  CHECK(small("mt_transformer_small") == 6472704);
  CHECK(small("mt_dynamic_mini") == 2475520);  // d = 128, the main job's model

  // WMT big, V = 32768 joined, all embeddings shared: counted (200M floats need not be made).
  auto big = [](const std::string& arch, const std::string& block, bool glu) {
    ModelConfig c = model_preset(arch);
    if (!block.empty()) c.encoder.block = c.decoder.block = block;
    c.encoder.glu = c.decoder.glu = glu;
    c.share_all_embeddings = true;
    c.source_vocab = c.target_vocab = 32768;
    return c;
  };
  CHECK(count_parameters(big("lightconv_wmt_en_de_big", "dynamic", true)) == 213237760);
  CHECK(count_parameters(big("lightconv_wmt_en_de_big", "lightweight", true)) == 208867504);
  CHECK(count_parameters(big("lightconv_wmt_en_de_big", "dynamic", false)) == 199592960);
  CHECK(count_parameters(big("lightconv_wmt_en_de_big", "lightweight", false)) == 195222704);
  CHECK(count_parameters(big("transformer_wmt_en_de_big", "", false)) == 209911808);
}

TEST_CASE("load_model_from_checkpoint rebuilds the model and its weights", "[translation][checkpoint]") {
  ModelConfig c = tiny_config("lightweight");
  auto model = tiny_model(c, 51);
  const std::string path = temp_path("model.safetensors");
  Checkpoint ck;
  for (auto& p : model->named_parameters()) ck.tensors.push_back(p);
  ck.metadata["model_config"] = model_config_to_json(model->config()).dump();
  save_checkpoint(path, ck);

  std::unique_ptr<SequenceModel> loaded = load_model_from_checkpoint(path);
  REQUIRE(dynamic_cast<TranslationModel*>(loaded.get()) != nullptr);
  CHECK_FALSE(loaded->is_training());
  Batch b = make_batch(kSources, kTargets);
  NoGrad no_grad;
  CHECK(loaded->forward(b).to_vector() == model->forward(b).to_vector());

  // Errors name the file.
  Checkpoint no_config;
  no_config.tensors = ck.tensors;
  save_checkpoint(path, no_config);
  CHECK_THROWS_WITH(load_model_from_checkpoint(path), Catch::Contains(path) && Catch::Contains("model_config"));
  Checkpoint wrong = ck;
  ModelConfig other = c;
  other.decoder.ffn_dim = 48;
  wrong.metadata["model_config"] = model_config_to_json(other).dump();
  save_checkpoint(path, wrong);
  CHECK_THROWS_WITH(load_model_from_checkpoint(path), Catch::Contains(path) && Catch::Contains("fc1"));
  std::remove(path.c_str());
  CHECK_THROWS_WITH(load_model_from_checkpoint(path), Catch::Contains(path));
}

TEST_CASE("every config shipped in configs/ reads and validates", "[translation][config]") {
  // The scripts train from these files; a typo in one would only show when a user runs it.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PAYLESS_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const std::string path = entry.path().string();
    INFO(path);
    const nlohmann::json j = read_json_file(path);
    REQUIRE(j.contains("model"));
    REQUIRE(j.contains("train"));
    ModelConfig m;
    CHECK_NOTHROW(m = model_config_from_json(j["model"], path));
    CHECK_NOTHROW(train_config_from_json(j["train"], path));
    m.source_vocab = m.target_vocab = 1000;
    CHECK(count_parameters(m) > 0);
  }
  CHECK(files >= 3);
}
