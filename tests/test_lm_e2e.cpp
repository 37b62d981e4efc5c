// Language modelling end to end on a slice of the shipped English corpus: prepare, train a tiny
// model for a few hundred updates, beat the unigram baseline by a wide margin, sample with
// incremental state exactly as with full forward passes, and the CLI's error paths.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#include "apps/data.h"
#include "core/parallel.h"
#include "models/language_model.h"
#include "models/sampling.h"
#include "models/trainer.h"
#include "text/lines.h"
#include "tests/support/command.h"
#include "tests/support/tiny_models.h"

using namespace payless;
namespace fs = std::filesystem;

namespace {

std::string make_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("payless_e2e_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// The first `n` lines of a shipped corpus file, written as plain text.
std::string slice(const std::string& from, const std::string& to, size_t first, size_t n) {
  std::vector<std::string> lines = read_lines(from);
  REQUIRE(lines.size() >= first + n);
  std::vector<std::string> part(lines.begin() + first, lines.begin() + first + n);
  write_lines(to, part);
  return to;
}

PreparedData prepare_slice(const std::string& dir) {
  const std::string corpus = std::string(PAYLESS_SOURCE_DIR) + "/data/bible-en-lm/";
  PrepareOptions o;
  o.task = "lm";
  o.out_dir = dir + "/data";
  o.train = slice(corpus + "train.txt.gz", dir + "/train.txt", 0, 3000);
  o.valid = slice(corpus + "valid.txt.gz", dir + "/valid.txt", 0, 200);
  o.test = slice(corpus + "test.txt.gz", dir + "/test.txt", 0, 200);
  o.bpe_merges = 800;
  o.quiet = true;
  return prepare_lm(o);
}

// Perplexity of the add-one unigram model of the train split on the valid split (same tokens,
// </s> included), the baseline a language model must beat.
double unigram_perplexity(const PreparedData& data, const TrainConfig& config) {
  std::vector<Batch> train = make_eval_batches(data, "train", config);
  std::vector<Batch> valid = make_eval_batches(data, "valid", config);
  std::vector<double> counts(data.vocab_size, 1.0);
  double total = static_cast<double>(data.vocab_size);
  for (const Batch& b : train)
    for (int32_t t : b.target.values)
      if (t != kPadId) counts[t] += 1, total += 1;
  double nll = 0;
  int64_t n = 0;
  for (const Batch& b : valid)
    for (int32_t t : b.target.values)
      if (t != kPadId) nll -= std::log(counts[t] / total), ++n;
  return std::exp(nll / n);
}

}  // namespace

TEST_CASE("a tiny language model trained on real text beats the unigram baseline", "[lm][e2e][slow]") {
  set_num_threads(2);
  const std::string dir = make_dir("lm");
  PreparedData data = prepare_slice(dir);

  ModelConfig config = model_preset("lm_dynamic_small");
  config.decoder.embed_dim = 64;
  config.decoder.ffn_dim = 128;
  config.decoder.layers = 2;
  config.decoder.heads = 4;
  config.decoder.kernel_sizes = {3, 7};
  config.dropout = 0.1f;
  config.target_vocab = data.vocab_size;
  TrainConfig train;
  train.lr = 2e-3;
  train.warmup_updates = 50;
  train.tokens_per_sample = 32;
  train.max_tokens = 1024;
  train.label_smoothing = 0.0f;
  train.max_update = 300;
  train.log_interval = 100;
  train.validate_interval_updates = 0;
  train.save_interval_updates = 0;

  const double unigram = unigram_perplexity(data, train);
  manual_seed(train.seed);
  auto model = build_model(config, train.seed);
  auto source = make_train_source(data, train);
  Trainer trainer(*model, train, *source, make_eval_batches(data, "valid", train), {dir + "/run", "", {}, true});
  trainer.run();
  const double ppl = trainer.last_validation().ppl;
  INFO("unigram perplexity " << unigram << ", model " << ppl);
  CHECK(ppl < 0.6 * unigram);

  // Sampling with incremental state makes exactly the choices of full forward passes.
  auto* lm = dynamic_cast<LanguageModel*>(model.get());
  REQUIRE(lm != nullptr);
  lm->eval();
  Bpe bpe = load_bpe(data);
  Dictionary dict = load_dictionary(data, "target");
  std::vector<int32_t> prompt = encode_text("And God said", bpe, dict);
  for (SamplingOptions o : {SamplingOptions{20, true, 1.0f, 0, 1, true, false},
                            SamplingOptions{20, false, 0.9f, 10, 7, true, false},
                            SamplingOptions{20, false, 1.3f, 0, 3, false, false}}) {
    std::vector<int32_t> fast = generate(*lm, prompt, o);
    std::vector<int32_t> slow = generate_full_forward(*lm, prompt, o);
    CHECK(fast == slow);
    CHECK(!fast.empty());
  }
  fs::remove_all(dir);
}

TEST_CASE("incremental sampling equals full-forward sampling for every block type", "[lm][sampling]") {
  for (const std::string block : {"dynamic", "lightweight", "transformer"}) {
    INFO(block);
    const ModelConfig config = testing::tiny_lm_config(block, 40, {5});
    auto model = build_model(config, 5);
    auto* lm = dynamic_cast<LanguageModel*>(model.get());
    lm->eval();
    SamplingOptions o;
    o.max_new_tokens = 12;  // longer than the kernel, so the conv window rolls over
    o.stop_at_eos = false;
    o.temperature = 2.0f;
    o.seed = 11;
    CHECK(generate(*lm, {5, 6, 7}, o) == generate_full_forward(*lm, {5, 6, 7}, o));
    o.greedy = true;
    CHECK(generate(*lm, {}, o) == generate_full_forward(*lm, {}, o));
  }
}

TEST_CASE("sampling choices: greedy, top-k, temperature, specials", "[lm][sampling]") {
  std::vector<float> logits = {5, 9, 1, 8, 2, 3};  // ids 0..5; 0, 1, 3 are <s>, <pad>, <unk>
  SamplingOptions greedy;
  greedy.greedy = true;
  CHECK(choose_token(logits.data(), 6, greedy, 0) == 5);  // best allowed
  greedy.allow_special = true;
  CHECK(choose_token(logits.data(), 6, greedy, 0) == 1);
  SamplingOptions top1;
  top1.top_k = 1;
  for (uint64_t draw = 0; draw < 20; ++draw) CHECK(choose_token(logits.data(), 6, top1, draw) == 5);
  // With a very low temperature sampling concentrates on the best allowed token.
  SamplingOptions cold;
  cold.temperature = 0.01f;
  for (uint64_t draw = 0; draw < 20; ++draw) CHECK(choose_token(logits.data(), 6, cold, draw) == 5);
  // At temperature 1 the frequencies follow the softmax over allowed ids {2, 4, 5}.
  SamplingOptions warm;
  std::map<int32_t, int> seen;
  for (uint64_t draw = 0; draw < 20000; ++draw) seen[choose_token(logits.data(), 6, warm, draw)]++;
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(seen[5] / 20000.0 == Approx(std::exp(3.0) / z).margin(0.015));
  CHECK(seen[2] / 20000.0 == Approx(std::exp(1.0) / z).margin(0.015));
  CHECK(seen.count(0) + seen.count(1) + seen.count(3) == 0);
}

namespace {

using Run = payless::testing::CommandResult;

Run run_cli(const std::string& arguments) {
  return payless::testing::run_command(std::string(PAYLESS_BINARY) + " " + arguments);
}

}  // namespace

TEST_CASE("the payless CLI reports bad input clearly and exits non-zero", "[cli][errors]") {
  const std::string dir = make_dir("cli");
  Run help = run_cli("--help");
  CHECK(help.status == 0);
  CHECK_THAT(help.output, Catch::Contains("train") && Catch::Contains("prepare"));
  Run unknown = run_cli("frobnicate");
  CHECK(unknown.status != 0);
  CHECK_THAT(unknown.output, Catch::Contains("unknown command 'frobnicate'"));
  Run missing = run_cli("prepare --task lm --train " + dir + "/nope.txt --valid " + dir + "/nope.txt --test " +
                        dir + "/nope.txt --out " + dir + "/d");
  CHECK(missing.status == 1);
  CHECK_THAT(missing.output, Catch::Contains(dir + "/nope.txt"));
  Run no_data = run_cli("train --arch lm_dynamic_small --data " + dir + "/nothing --save-dir " + dir + "/r");
  CHECK(no_data.status == 1);
  CHECK_THAT(no_data.output, Catch::Contains(dir + "/nothing") && Catch::Contains("payless prepare"));
  {
    std::ofstream bad(dir + "/bad.json");
    bad << "{\"model\": {\"arch\": \"lm_dynamic_small\"},\n \"train\": {\"lr\": 1e-3,}}\n";
  }
  Run bad_json = run_cli("train --config " + dir + "/bad.json --data " + dir + " --save-dir " + dir + "/r");
  CHECK(bad_json.status == 1);
  CHECK_THAT(bad_json.output, Catch::Contains("bad.json:2:") && Catch::Contains("malformed JSON"));
  {
    std::ofstream typo(dir + "/typo.json");
    typo << "{\"model\": {\"arch\": \"lm_dynamic_small\", \"dropuot\": 0.2}, \"train\": {}}\n";
  }
  Run bad_key = run_cli("train --config " + dir + "/typo.json --data " + dir + " --save-dir " + dir + "/r");
  CHECK(bad_key.status == 1);
  CHECK_THAT(bad_key.output, Catch::Contains("dropuot") && Catch::Contains("did you mean 'dropout'"));
  Run bad_arch = run_cli("train --arch lightconv_huge --data " + dir + " --save-dir " + dir + "/r");
  CHECK(bad_arch.status == 1);
  CHECK_THAT(bad_arch.output, Catch::Contains("unknown architecture 'lightconv_huge'"));
  Run bad_option = run_cli("eval --checkpoint x --data y --bogus 3");
  CHECK(bad_option.status == 1);
  CHECK_THAT(bad_option.output, Catch::Contains("unknown option --bogus"));
  Run corrupt = run_cli("eval --checkpoint " + dir + "/bad.json --data " + dir);
  CHECK(corrupt.status == 1);
  fs::remove_all(dir);
}
