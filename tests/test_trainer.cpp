// The training loop: exact resume, skipped non-finite updates, gradient accumulation, and the
// checkpoint contents. A tiny language model trains on a synthetic, learnable token stream
// (next token = current + 1 mod V, with noise) served by a BatchSource whose position is an index.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/autograd.h"
#include "core/parallel.h"
#include "core/serialize.h"
#include "models/language_model.h"
#include "models/trainer.h"
#include "tests/support/tiny_models.h"

using namespace payless;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 24;

// Batch i is a pure function of (seed, i): B rows of T tokens counting up from a random start.
class CountingSource : public BatchSource {
 public:
  CountingSource(int64_t rows, int64_t length, uint64_t seed = 3) : rows_(rows), length_(length), seed_(seed) {}
  Batch next() override { return make(index_++); }
  Batch make(int64_t i) const {
    std::vector<int32_t> input, target;
    for (int64_t r = 0; r < rows_; ++r) {
      int32_t token = 4 + static_cast<int32_t>(uniform01(seed_, i, r) * (kVocab - 4));
      input.push_back(kEosId);
      for (int64_t t = 0; t < length_; ++t) {
        if (t > 0) input.push_back(token);
        token = 4 + (token - 4 + 1) % (kVocab - 4);
        target.push_back(token);
      }
    }
    Batch b;
    b.decoder_input = IdTensor(Shape{rows_, length_}, input);
    b.target = IdTensor(Shape{rows_, length_}, target);
    b.target_tokens = rows_ * length_;
    return b;
  }
  int64_t epoch() const override { return 1 + index_ / 50; }
  nlohmann::json position() const override { return {{"index", index_}}; }
  void restore(const nlohmann::json& p) override { index_ = p.at("index").get<int64_t>(); }
  int64_t batches_per_epoch() const override { return 50; }

 private:
  int64_t rows_, length_;
  uint64_t seed_;
  int64_t index_ = 0;
};

ModelConfig tiny_lm(const std::string& block) {
  ModelConfig c = testing::tiny_lm_config(block, kVocab);
  c.dropout = 0.1f;
  c.weight_dropout = 0.1f;
  return c;
}

TrainConfig quick_train(int64_t max_update) {
  TrainConfig t;
  t.lr = 3e-3;
  t.warmup_updates = 4;
  t.max_update = max_update;
  t.log_interval = 2;
  t.validate_interval_updates = 0;
  t.save_interval_updates = 3;
  t.keep_last_checkpoints = 2;
  return t;
}

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("payless_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<std::vector<float>> snapshot(const Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& [name, t] : m.named_parameters()) out.push_back(t.to_vector());
  return out;
}

}  // namespace

TEST_CASE("resuming from a checkpoint is bit-identical to never stopping", "[trainer][resume]") {
  set_num_threads(1);
  for (const std::string block : {"dynamic", "transformer"}) {
    INFO("block " << block);
    const std::string dir = temp_dir("resume_" + block);
    CountingSource valid_source(4, 8, 99);
    std::vector<Batch> valid = {valid_source.make(0)};

    // Straight through: 12 updates.
    manual_seed(5);
    auto straight = build_model(tiny_lm(block), 11);
    CountingSource source_a(4, 8);
    Trainer a(*straight, quick_train(12), source_a, valid, {dir + "/a", "", {}, true});
    a.run();

    // 6 updates, stop; a fresh process (fresh model, fresh RNG) resumes to 12.
    manual_seed(5);
    auto first = build_model(tiny_lm(block), 11);
    CountingSource source_b(4, 8);
    Trainer b(*first, quick_train(6), source_b, valid, {dir + "/b", "", {}, true});
    b.run();
    manual_seed(12345);  // whatever the RNG was, resume restores it
    auto second = build_model(tiny_lm(block), 77);
    CountingSource source_c(4, 8);
    Trainer c(*second, quick_train(12), source_c, valid, {dir + "/b", "", {}, true});
    c.resume(c.checkpoint_path("last"));
    CHECK(c.updates() == 6);
    c.run();

    CHECK(snapshot(*second) == snapshot(*straight));
    REQUIRE(a.history().size() == 12);
    REQUIRE(b.history().size() == 6);
    REQUIRE(c.history().size() == 6);
    for (int i = 0; i < 6; ++i) {
      CHECK(b.history()[i].loss == a.history()[i].loss);
      CHECK(c.history()[i].loss == a.history()[6 + i].loss);
      CHECK(c.history()[i].gnorm == a.history()[6 + i].gnorm);
    }
    // Training reduced the loss on this learnable stream.
    CHECK(a.history().back().loss < a.history().front().loss);
    fs::remove_all(dir);
  }
}

TEST_CASE("checkpoints: last, best and the last N numbered ones", "[trainer][checkpoint]") {
  const std::string dir = temp_dir("files");
  manual_seed(1);
  auto model = build_model(tiny_lm("dynamic"), 3);
  CountingSource source(4, 8);
  CountingSource valid_source(4, 8, 42);
  TrainConfig t = quick_train(9);
  t.validate_interval_updates = 3;
  Trainer trainer(*model, t, source, {valid_source.make(0)}, {dir, dir + "/train.jsonl", {{"corpus", "synthetic"}}, true});
  trainer.run();
  CHECK(fs::exists(trainer.checkpoint_path("last")));
  CHECK(fs::exists(trainer.checkpoint_path("best")));
  CHECK(fs::exists(trainer.checkpoint_path("9")));
  CHECK(fs::exists(trainer.checkpoint_path("6")));
  CHECK_FALSE(fs::exists(trainer.checkpoint_path("3")));  // keep_last_checkpoints = 2

  Checkpoint c = load_checkpoint(trainer.checkpoint_path("last"));
  CHECK(c.metadata_value("updates") == "9");
  CHECK(nlohmann::json::parse(c.metadata_value("extra"))["corpus"] == "synthetic");
  CHECK(c.find("decoder.embed_tokens.weight") != nullptr);
  CHECK(c.find("optimizer.exp_avg.decoder.embed_tokens.weight") != nullptr);

  // The log has train and valid events with the documented fields.
  std::ifstream log(dir + "/train.jsonl");
  std::string line;
  int train_events = 0, valid_events = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") {
      ++train_events;
      for (const char* key : {"update", "epoch", "loss", "ppl", "lr", "gnorm", "tokens_per_s", "wall"})
        CHECK(j.contains(key));
    }
    valid_events += j["type"] == "valid";
  }
  CHECK(train_events == 4);   // updates 2, 4, 6, 8
  CHECK(valid_events == 4);   // updates 3, 6, 9 and the end
  fs::remove_all(dir);
}

TEST_CASE("resume refuses a checkpoint of another architecture", "[trainer][errors]") {
  const std::string dir = temp_dir("mismatch");
  manual_seed(1);
  auto model = build_model(tiny_lm("dynamic"), 3);
  CountingSource source(4, 8);
  Trainer trainer(*model, quick_train(3), source, {}, {dir, "", {}, true});
  trainer.run();
  ModelConfig other = tiny_lm("dynamic");
  other.decoder.layers = 3;
  auto bigger = build_model(other, 3);
  CountingSource source2(4, 8);
  Trainer t2(*bigger, quick_train(3), source2, {}, {dir, "", {}, true});
  CHECK_THROWS_WITH(t2.resume(t2.checkpoint_path("last")),
                    Catch::Contains("different model config") && Catch::Contains("checkpoint_last"));
  fs::remove_all(dir);
}

namespace {

// Wraps a model and returns a NaN loss for the batches whose index is listed.
class FaultyModel : public SequenceModel {
 public:
  FaultyModel(SequenceModel& inner, std::vector<int64_t> bad)
      : SequenceModel(inner.config()), inner_(inner), bad_(std::move(bad)) {
    register_module("inner", inner_);
  }
  Tensor forward(const Batch& batch) override { return inner_.forward(batch); }
  CrossEntropyResult loss(const Batch& batch, float smoothing, SmoothingVariant variant) override {
    CrossEntropyResult r = inner_.loss(batch, smoothing, variant);
    bool bad = std::find(bad_.begin(), bad_.end(), calls_++) != bad_.end();
    if (bad) r.loss = add(r.loss, Tensor::scalar(NAN));
    return r;
  }

 private:
  SequenceModel& inner_;
  std::vector<int64_t> bad_;
  int64_t calls_ = 0;
};

}  // namespace

TEST_CASE("a non-finite loss skips the update and too many in a row stop training", "[trainer][nan]") {
  const std::string dir = temp_dir("nan");
  manual_seed(1);
  auto inner = build_model(tiny_lm("dynamic"), 3);
  FaultyModel model(*inner, {2});  // the third batch is poisoned
  CountingSource source(4, 8);
  Trainer trainer(model, quick_train(5), source, {}, {dir, dir + "/log.jsonl", {}, true});
  trainer.run();
  CHECK(trainer.updates() == 5);
  for (const auto& p : model.named_parameters())
    for (float v : p.second.to_vector()) REQUIRE(std::isfinite(v));
  std::ifstream log(dir + "/log.jsonl");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"skipped\"") != std::string::npos);

  auto inner2 = build_model(tiny_lm("dynamic"), 3);
  FaultyModel always_bad(*inner2, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CountingSource source2(4, 8);
  TrainConfig t = quick_train(5);
  t.max_bad_steps = 3;
  Trainer t2(always_bad, t, source2, {}, {dir + "/2", "", {}, true});
  CHECK_THROWS_WITH(t2.run(), Catch::Contains("diverged") && Catch::Contains("3 updates in a row"));
  fs::remove_all(dir);
}

namespace {

// Serves each batch of `full` as two halves (rows split), for the accumulation test.
class HalvesSource : public BatchSource {
 public:
  explicit HalvesSource(const CountingSource& full) : full_(full) {}
  Batch next() override {
    Batch whole = full_.make(index_ / 2);
    const int64_t rows = whole.target.shape[0] / 2, T = whole.target.shape[1];
    const int64_t first = (index_ % 2) * rows * T;
    ++index_;
    Batch half;
    half.decoder_input = IdTensor(Shape{rows, T}, std::vector<int32_t>(whole.decoder_input.values.begin() + first,
                                                                        whole.decoder_input.values.begin() + first + rows * T));
    half.target = IdTensor(Shape{rows, T}, std::vector<int32_t>(whole.target.values.begin() + first,
                                                                 whole.target.values.begin() + first + rows * T));
    half.target_tokens = rows * T;
    return half;
  }
  int64_t epoch() const override { return 1; }
  nlohmann::json position() const override { return {{"index", index_}}; }
  void restore(const nlohmann::json& p) override { index_ = p.at("index").get<int64_t>(); }
  int64_t batches_per_epoch() const override { return 100; }

 private:
  const CountingSource& full_;
  int64_t index_ = 0;
};

}  // namespace

TEST_CASE("two half batches with update_freq 2 equal one full batch", "[trainer][accumulation]") {
  const std::string dir = temp_dir("accumulate");
  ModelConfig c = tiny_lm("dynamic");
  c.dropout = c.weight_dropout = c.input_dropout = 0.0f;  // no randomness: the two runs must agree
  auto full_model = build_model(c, 9);
  auto half_model = build_model(c, 9);
  CountingSource full(4, 8);
  HalvesSource halves(full);
  TrainConfig t = quick_train(4);
  Trainer one(*full_model, t, full, {}, {dir + "/full", "", {}, true});
  one.run();
  t.update_freq = 2;
  Trainer two(*half_model, t, halves, {}, {dir + "/half", "", {}, true});
  two.run();
  auto a = snapshot(*full_model), b = snapshot(*half_model);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) worst = std::max(worst, double(std::fabs(a[i][j] - b[i][j])));
  CHECK(worst < 1e-5);
  for (int i = 0; i < 4; ++i) CHECK(one.history()[i].loss == Approx(two.history()[i].loss).epsilon(1e-5));
  fs::remove_all(dir);
}
