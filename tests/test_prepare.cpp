// Tests of apps/data.h: preparing data folders (files, reuse, re-preparation, errors), the
// training batch source (coverage, exact restore), evaluation batches and raw-text encoding.
// Tag [prepare]. Inputs are small slices (300 training lines) of the corpora shipped in data/,
// written to a temporary folder, plus the shipped (small) gzipped valid files as they are.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/data.h"
#include "core/error.h"
#include "text/lines.h"

using namespace payless;
namespace fs = std::filesystem;

#ifndef PAYLESS_SOURCE_DIR
#error "PAYLESS_SOURCE_DIR must be defined (CMake does it for payless_tests)"
#endif

namespace {

const std::string kShipped = PAYLESS_SOURCE_DIR "/data/";

// A fresh, empty folder under /tmp, removed when the test ends.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name) {
    path = (fs::temp_directory_path() / ("payless_test_prepare_" + name + "_" + std::to_string(getpid()))).string();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& file) const { return path + "/" + file; }
};

std::vector<std::string> head(const std::string& path, size_t n) {
  std::vector<std::string> lines = read_lines(path);
  if (lines.size() > n) lines.resize(n);
  return lines;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// LM inputs: 300 train lines and 60 test lines written to dir; valid is the shipped gz file.
PrepareOptions lm_options(const TempDir& dir) {
  write_lines(dir / "train.txt", head(kShipped + "bible-en-lm/train.txt.gz", 300));
  write_lines(dir / "test.txt", head(kShipped + "bible-en-lm/test.txt.gz", 60));
  PrepareOptions o;
  o.task = "lm";
  o.train = dir / "train.txt";
  o.valid = kShipped + "bible-en-lm/valid.txt.gz";
  o.test = dir / "test.txt";
  o.bpe_merges = 300;
  o.out_dir = dir / "out";
  o.quiet = true;
  return o;
}

// Translation inputs: train.{es,en} (300 lines) and test.{es,en} (60) in dir; valid is shipped.
PrepareOptions mt_options(const TempDir& dir) {
  for (const char* lang : {"es", "en"}) {
    write_lines(dir / (std::string("train.") + lang),
                head(kShipped + "bible-es-en/train." + lang + ".gz", 300));
    write_lines(dir / (std::string("test.") + lang), head(kShipped + "bible-es-en/test." + lang + ".gz", 60));
  }
  PrepareOptions o;
  o.task = "translation";
  o.source_lang = "es";
  o.target_lang = "en";
  o.train_prefix = dir / "train";
  o.valid_prefix = kShipped + "bible-es-en/valid";  // resolves to valid.es.gz / valid.en.gz
  o.test_prefix = dir / "test";
  o.bpe_merges = 400;
  o.out_dir = dir / "out";
  o.quiet = true;
  return o;
}

TrainConfig small_batches() {
  TrainConfig c;
  c.seed = 7;
  c.max_tokens = 256;
  c.tokens_per_sample = 64;
  return c;
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.source.values == b.source.values && a.decoder_input.values == b.decoder_input.values &&
         a.target.values == b.target.values && a.target_tokens == b.target_tokens &&
         a.target.shape.numel() == b.target.shape.numel();
}

int64_t count_of(const std::vector<int32_t>& values, int32_t id) {
  return static_cast<int64_t>(std::count(values.begin(), values.end(), id));
}

}  // namespace

TEST_CASE("prepare lm writes the folder, reuses it, and prepares again when something changed", "[prepare]") {
  TempDir dir("lm");
  PrepareOptions o = lm_options(dir);
  bool reused = true;
  PreparedData data = prepare_lm(o, &reused);
  CHECK_FALSE(reused);
  for (const char* file : {"bpe.codes", "dict.txt", "train.bin", "valid.bin", "test.bin", "prepare.json"})
    CHECK(fs::exists(dir / ("out/" + std::string(file))));
  CHECK(data.task == "lm");
  CHECK(data.vocab_size % 8 == 0);
  CHECK(data.source_vocab_size == 0);
  CHECK(load_dictionary(data, "target").size() == data.vocab_size);
  CHECK(load_bpe(data).codes().merges.size() == 300);
  const nlohmann::json& splits = data.info["splits"];
  CHECK(splits["train"]["sentences"] == 300);
  CHECK(splits["train"]["unknown"] == 0);  // the dictionary was built on train
  CHECK(splits["valid"]["sentences"] == 530);
  CHECK(splits["test"]["sentences"] == 60);
  CHECK(splits["train"]["tokens"].get<int64_t>() > 300 * 10);
  CHECK(data.info["settings"]["bpe_merges"] == 300);
  CHECK(data.info["inputs"]["train"]["bytes"] == fs::file_size(o.train));

  // Same settings and inputs: nothing is written.
  const auto written = fs::last_write_time(dir / "out/train.bin");
  CHECK(prepare_lm(o, &reused).vocab_size == data.vocab_size);
  CHECK(reused);
  CHECK(fs::last_write_time(dir / "out/train.bin") == written);
  // The same contents under another path are the same data.
  fs::copy_file(o.test, dir / "test_copy.txt");
  o.test = dir / "test_copy.txt";
  prepare_lm(o, &reused);
  CHECK(reused);

  SECTION("a changed setting") {
    o.bpe_merges = 200;
    data = prepare_lm(o, &reused);
    CHECK_FALSE(reused);
    CHECK(data.info["settings"]["bpe_merges"] == 200);
    CHECK(load_bpe(data).codes().merges.size() == 200);
    prepare_lm(o, &reused);
    CHECK(reused);
  }
  SECTION("a changed input") {
    std::vector<std::string> lines = read_lines(o.train);
    lines.push_back("One more verse.");
    write_lines(o.train, lines);
    data = prepare_lm(o, &reused);
    CHECK_FALSE(reused);
    CHECK(data.info["splits"]["train"]["sentences"] == 301);
  }
  SECTION("a damaged output") {
    std::ofstream(dir / "out/dict.txt", std::ios::app) << "extra 1\n";
    prepare_lm(o, &reused);
    CHECK_FALSE(reused);
  }
  SECTION("--force") {
    o.force = true;
    prepare_lm(o, &reused);
    CHECK_FALSE(reused);
  }
}

TEST_CASE("prepare translation: joined and separate dictionaries, .gz inputs by prefix", "[prepare]") {
  TempDir dir("mt");
  PrepareOptions o = mt_options(dir);
  bool reused = true;
  PreparedData data = prepare_translation(o, &reused);
  CHECK_FALSE(reused);
  for (const char* file : {"bpe.codes", "dict.txt", "train.es.bin", "train.en.bin", "valid.es.bin",
                           "valid.en.bin", "test.es.bin", "test.en.bin", "prepare.json"})
    CHECK(fs::exists(dir / ("out/" + std::string(file))));
  CHECK(data.source_lang == "es");
  CHECK(data.target_lang == "en");
  CHECK(data.vocab_size == data.source_vocab_size);
  CHECK(data.vocab_size % 8 == 0);
  CHECK(data.info["splits"]["train"]["pairs"] == 300);
  CHECK(data.info["splits"]["valid"]["pairs"] == 528);
  CHECK(data.info["splits"]["train"]["source"]["unknown"] == 0);
  CHECK(data.info["splits"]["train"]["target"]["unknown"] == 0);
  CHECK(data.info["inputs"]["valid.es"]["path"].get<std::string>() == kShipped + "bible-es-en/valid.es.gz");
  prepare_translation(o, &reused);
  CHECK(reused);

  o.joined_dictionary = false;
  data = prepare_translation(o, &reused);
  CHECK_FALSE(reused);
  CHECK(fs::exists(dir / "out/dict.es.txt"));
  CHECK(fs::exists(dir / "out/dict.en.txt"));
  CHECK_FALSE(fs::exists(dir / "out/dict.txt"));  // the old joined dictionary is gone
  const Dictionary es = load_dictionary(data, "source"), en = load_dictionary(data, "target");
  CHECK(es.size() == data.source_vocab_size);
  CHECK(en.size() == data.vocab_size);
  CHECK(es.size() != en.size());
  CHECK(es.contains("Dios"));
  CHECK_FALSE(en.contains("Dios"));
}

TEST_CASE("prepare errors name the file: missing, empty, misaligned", "[prepare]") {
  TempDir dir("errors");
  SECTION("missing lm file") {
    PrepareOptions o = lm_options(dir);
    o.valid = dir / "nope.txt";
    const std::string e = error_of([&] { prepare_lm(o); });
    CHECK(contains(e, dir / "nope.txt"));
    CHECK(contains(e, "no such file"));
  }
  SECTION("missing translation file") {
    PrepareOptions o = mt_options(dir);
    o.test_prefix = dir / "nope";
    const std::string e = error_of([&] { prepare_translation(o); });
    CHECK(contains(e, dir / "nope.es"));
    CHECK(contains(e, dir / "nope.es.gz"));
  }
  SECTION("empty corpus") {
    PrepareOptions o = lm_options(dir);
    write_lines(o.test, {});
    const std::string e = error_of([&] { prepare_lm(o); });
    CHECK(contains(e, o.test));
    CHECK(contains(e, "empty corpus"));
    write_lines(o.train, {"", ""});
    CHECK(contains(error_of([&] { prepare_lm(o); }), o.train));
    CHECK_FALSE(fs::exists(dir / "out/prepare.json"));
  }
  SECTION("misaligned parallel files") {
    PrepareOptions o = mt_options(dir);
    write_lines(dir / "train.en", head(kShipped + "bible-es-en/train.en.gz", 299));
    const std::string e = error_of([&] { prepare_translation(o); });
    CHECK(contains(e, dir / "train.es"));
    CHECK(contains(e, dir / "train.en"));
    CHECK(contains(e, "300"));
    CHECK(contains(e, "299"));
    CHECK_FALSE(fs::exists(dir / "out/prepare.json"));
  }
  SECTION("same language twice") {
    PrepareOptions o = mt_options(dir);
    o.target_lang = "es";
    CHECK(contains(error_of([&] { prepare_translation(o); }), "both 'es'"));
  }
  SECTION("loading an unprepared or damaged folder") {
    std::string e = error_of([&] { load_prepared(dir / "missing"); });
    CHECK(contains(e, dir / "missing"));
    CHECK(contains(e, "payless prepare"));
    e = error_of([&] { load_prepared(dir.path); });
    CHECK(contains(e, "prepare.json"));
    CHECK(contains(e, "payless prepare"));
    PreparedData data = prepare_lm(lm_options(dir));
    CHECK(contains(error_of([&] { load_dictionary(data, "source"); }), "no source dictionary"));
    fs::remove(dir / "out/valid.bin");
    e = error_of([&] { load_prepared(data.dir); });
    CHECK(contains(e, "valid.bin"));
    CHECK(contains(e, "payless prepare --task lm --out " + data.dir));
  }
}

TEST_CASE("lm train source covers the data each epoch and restores its position exactly", "[prepare]") {
  TempDir dir("lmsource");
  const PreparedData data = prepare_lm(lm_options(dir));
  const TrainConfig config = small_batches();
  std::unique_ptr<BatchSource> source = make_train_source(data, config);
  const int64_t sentences = data.info["splits"]["train"]["sentences"];
  const int64_t tokens = data.info["splits"]["train"]["tokens"];
  const int64_t n = source->batches_per_epoch();
  REQUIRE(n > 3);

  CHECK(source->epoch() == 1);
  int64_t targets = 0, ends = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Batch b = source->next();
    REQUIRE(b.target.shape.rank() == 2);
    CHECK(b.decoder_input.shape[0] == b.target.shape[0]);
    CHECK(b.decoder_input.shape[1] == b.target.shape[1]);
    CHECK(b.target.shape[1] <= config.tokens_per_sample);
    CHECK(b.source.values.empty());
    CHECK(b.target_tokens == b.target.numel() - count_of(b.target.values, kPadId));
    targets += b.target_tokens;
    ends += count_of(b.target.values, kEosId);
  }
  CHECK(targets == tokens + sentences);  // every token and every </s> once
  CHECK(ends == sentences);
  CHECK(source->epoch() == 2);

  // Stop after 2 more batches, save, and continue in a fresh source.
  source->next();
  source->next();
  const nlohmann::json saved = source->position();
  CHECK(saved["epoch"] == 1);
  CHECK(saved["index"] == 2);
  std::vector<Batch> expected;
  for (int64_t i = 0; i < n; ++i) expected.push_back(source->next());  // crosses into epoch 3
  std::unique_ptr<BatchSource> resumed = make_train_source(data, config);
  resumed->restore(nlohmann::json::parse(saved.dump()));
  CHECK(resumed->epoch() == 2);
  for (int64_t i = 0; i < n; ++i) CHECK(same_batch(resumed->next(), expected[i]));
  CHECK(resumed->position() == source->position());

  // A new epoch has another order.
  std::unique_ptr<BatchSource> fresh = make_train_source(data, config);
  const Batch first_of_epoch1 = fresh->next();
  fresh->restore({{"epoch", 1}, {"index", 0}});
  CHECK_FALSE(same_batch(fresh->next(), first_of_epoch1));

  CHECK(contains(error_of([&] { resumed->restore({{"epoch", 0}}); }), "index"));
  CHECK(contains(error_of([&] { resumed->restore({{"epoch", 0}, {"index", 0}, {"batches_per_epoch", n + 1}}); }),
                 "batches per epoch"));
  TrainConfig other = config;
  other.max_tokens = 512;
  CHECK(contains(error_of([&] { make_train_source(data, other)->restore(saved); }), "batches per epoch"));
}

TEST_CASE("translation train source covers the pairs and restores exactly; eval batches are fixed", "[prepare]") {
  TempDir dir("mtsource");
  const PreparedData data = prepare_translation(mt_options(dir));
  const TrainConfig config = small_batches();
  std::unique_ptr<BatchSource> source = make_train_source(data, config);
  const int64_t n = source->batches_per_epoch();
  const nlohmann::json& train = data.info["splits"]["train"];
  int64_t targets = 0, pairs = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Batch b = source->next();
    REQUIRE(b.source.shape.rank() == 2);
    const int64_t B = b.source.shape[0], T = b.target.shape[1];
    CHECK(b.target.shape[0] == B);
    CHECK(B * std::max(b.source.shape[1], T) <= config.max_tokens);
    for (int64_t r = 0; r < B; ++r) {
      CHECK(b.decoder_input.values[r * T] == kEosId);                    // </s> y1 .. yn
      CHECK(b.source.values[(r + 1) * b.source.shape[1] - 1] == kEosId);  // left-padded x </s>
    }
    CHECK(b.target_tokens == b.target.numel() - count_of(b.target.values, kPadId));
    targets += b.target_tokens;
    pairs += B;
  }
  CHECK(pairs == 300);
  CHECK(targets == train["target"]["tokens"].get<int64_t>() + 300);

  const nlohmann::json saved = source->position();
  std::vector<Batch> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(source->next());
  std::unique_ptr<BatchSource> resumed = make_train_source(data, config);
  resumed->restore(saved);
  CHECK(resumed->epoch() == 2);
  for (int i = 0; i < 5; ++i) CHECK(same_batch(resumed->next(), expected[i]));

  // Evaluation: every valid pair once, the same batches every time; long pairs left out.
  const std::vector<Batch> valid = make_eval_batches(data, "valid", config);
  int64_t valid_pairs = 0;
  for (const Batch& b : valid) valid_pairs += b.target.shape[0];
  CHECK(valid_pairs == 528);
  const std::vector<Batch> again = make_eval_batches(data, "valid", config);
  REQUIRE(again.size() == valid.size());
  for (size_t i = 0; i < valid.size(); ++i) CHECK(same_batch(valid[i], again[i]));
  TrainConfig short_only = config;
  short_only.max_source_len = 20;
  int64_t short_pairs = 0;
  for (const Batch& b : make_eval_batches(data, "valid", short_only)) {
    short_pairs += b.source.shape[0];
    CHECK(b.source.shape[1] <= 20);
  }
  CHECK(short_pairs > 0);
  CHECK(short_pairs < 528);
  CHECK(contains(error_of([&] { make_eval_batches(data, "dev", config); }), "no split 'dev'"));
}

TEST_CASE("lm eval batches cover the split in order", "[prepare]") {
  TempDir dir("lmeval");
  const PreparedData data = prepare_lm(lm_options(dir));
  const TrainConfig config = small_batches();
  const std::vector<Batch> test = make_eval_batches(data, "test", config);
  int64_t targets = 0;
  for (const Batch& b : test) targets += b.target_tokens;
  CHECK(targets == data.info["splits"]["test"]["tokens"].get<int64_t>() + 60);
  // In order: the first block starts the split, its input begins with </s>.
  REQUIRE_FALSE(test.empty());
  CHECK(test[0].decoder_input.values[0] == kEosId);
  CHECK(test[0].target.values[1] == test[0].decoder_input.values[2]);
}

TEST_CASE("encode_text and decode_text round-trip raw text with non-ASCII characters", "[prepare]") {
  TempDir dir("text");
  const PreparedData data = prepare_translation(mt_options(dir));
  Bpe bpe = load_bpe(data);
  const Dictionary dict = load_dictionary(data, "source");
  const std::string line = "¿Crió Dios la tierra? Sí; y fué la luz: el niño está aquí.";
  const std::vector<int32_t> ids = encode_text(line, bpe, dict);
  CHECK(count_of(ids, kEosId) == 0);
  CHECK(decode_text(ids, dict) == line);
  // Subwords really are used (Crió is not a dictionary word), and unknown characters become <unk>.
  CHECK(ids.size() > 12);
  const std::vector<int32_t> unknown = encode_text("Dios ☃", bpe, dict);
  CHECK(unknown.back() == kUnkId);
  CHECK(decode_text(unknown, dict) == "Dios <unk>");
  CHECK(encode_text("", bpe, dict).empty());
  CHECK(contains(error_of([&] { encode_text("bad \xff byte", bpe, dict); }), "UTF-8"));
}
