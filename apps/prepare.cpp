// payless prepare: raw text -> a prepared data folder (BPE codes, dictionary, binarized splits,
// prepare.json) that train, eval, sample and translate read. Only the command line is here; the
// work is prepare_lm / prepare_translation in apps/data.cpp, where the folder is described.
#include <cstdio>
#include <filesystem>
#include <iterator>

#include "apps/cli.h"
#include "apps/data.h"
#include "core/error.h"

namespace payless {
namespace {

// "auto" or a whole number.
int64_t parse_count(const std::string& text, const std::string& option, int64_t automatic) {
  if (text == "auto") return automatic;
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail("option --", option, " wants a whole number or 'auto', got '", text, "'");
}

int run_prepare(cli::Args& args) {
  const PrepareOptions defaults;
  PrepareOptions o;
  o.task = args.require("task", "lm (one text per split) or translation (parallel files)");
  o.out_dir = args.require("out", "folder to write, e.g. runs/bible-lm/data");
  o.train = args.get("train", defaults.train, "lm: training text (plain or .gz, one sentence a line)");
  o.valid = args.get("valid", defaults.valid, "lm: validation text");
  o.test = args.get("test", defaults.test, "lm: test text");
  o.source_lang = args.get("source-lang", defaults.source_lang, "translation: source language suffix");
  o.target_lang = args.get("target-lang", defaults.target_lang, "translation: target language suffix");
  o.train_prefix = args.get("train-prefix", defaults.train_prefix,
                            "translation: training files are PREFIX.LANG or PREFIX.LANG.gz");
  o.valid_prefix = args.get("valid-prefix", defaults.valid_prefix, "translation: validation files prefix");
  o.test_prefix = args.get("test-prefix", defaults.test_prefix, "translation: test files prefix");
  const bool joined = args.flag("joined-dictionary", "translation: one dictionary for both languages (the default)");
  const bool separate = args.flag("no-joined-dictionary", "translation: one dictionary per language");
  const std::string merges = args.get("bpe-merges", "auto",
                                      "BPE merges to learn on train; auto = 8000 for lm, 10000 for translation");
  o.bpe_min_frequency = args.get_int("bpe-min-frequency", defaults.bpe_min_frequency,
                                     "stop learning BPE when the best pair is rarer than this");
  o.dict_threshold = args.get_int("threshold", defaults.dict_threshold,
                                  "drop subwords seen fewer times in train (0 keeps all)");
  o.dict_nwords = args.get_int("nwords", defaults.dict_nwords,
                               "at most this many dictionary entries, specials included (-1: no limit)");
  o.padding_factor = args.get_int("padding-factor", defaults.padding_factor,
                                  "pad the dictionary size to a multiple of this");
  o.force = args.flag("force", "prepare again even if DIR already holds this preparation");
  o.quiet = args.flag("quiet", "no progress lines on stderr");
  if (args.wants_help()) {
    std::printf("%s", args.usage(
        "Tokenizes raw text, learns BPE on the train split (jointly for both languages in\n"
        "translation), builds the dictionary, binarizes train/valid/test and writes them with\n"
        "prepare.json into --out. Running it again with the same settings and unchanged inputs\n"
        "does nothing. Defaults read the corpora shipped in data/ (run from the payless folder).\n\n"
        "examples:\n"
        "  payless prepare --task lm --out runs/bible-lm/data\n"
        "  payless prepare --task translation --source-lang es --target-lang en --out runs/bible-mt/data").c_str());
    return 0;
  }
  args.finish();

  if (o.task != "lm" && o.task != "translation")
    fail("--task must be 'lm' or 'translation', got '", o.task, "'");
  const bool lm = o.task == "lm";
  // An option of the other task would be silently ignored: say so instead.
  const std::pair<const char*, bool> other_task_options[] = {
      {"train", o.train != defaults.train},
      {"valid", o.valid != defaults.valid},
      {"test", o.test != defaults.test},
      {"source-lang", o.source_lang != defaults.source_lang},
      {"target-lang", o.target_lang != defaults.target_lang},
      {"train-prefix", o.train_prefix != defaults.train_prefix},
      {"valid-prefix", o.valid_prefix != defaults.valid_prefix},
      {"test-prefix", o.test_prefix != defaults.test_prefix},
      {"joined-dictionary", joined},
      {"no-joined-dictionary", separate}};
  for (size_t i = 0; i < std::size(other_task_options); ++i) {
    const bool is_lm_option = i < 3;
    if (other_task_options[i].second && is_lm_option != lm)
      fail("--", other_task_options[i].first, " is an option of --task ",
           is_lm_option ? "lm" : "translation", ", not of --task ", o.task);
  }
  if (joined && separate) fail("give --joined-dictionary or --no-joined-dictionary, not both");
  o.joined_dictionary = !separate;
  o.bpe_merges = parse_count(merges, "bpe-merges", lm ? 8000 : 10000);
  const bool uses_shipped = lm ? (o.train == defaults.train || o.valid == defaults.valid || o.test == defaults.test)
                               : (o.train_prefix == defaults.train_prefix || o.valid_prefix == defaults.valid_prefix ||
                                  o.test_prefix == defaults.test_prefix);
  if (uses_shipped && !std::filesystem::is_directory(lm ? "data/bible-en-lm" : "data/bible-es-en")) {
    fail("the default corpora are read from ", lm ? "data/bible-en-lm/" : "data/bible-es-en/",
         " under the current folder, which has none: run payless from its source folder or give ",
         lm ? "--train, --valid and --test" : "--train-prefix, --valid-prefix and --test-prefix");
  }

  bool reused = false;
  const PreparedData data = prepare_data(o, &reused);
  if (reused) {
    std::printf("data already prepared in %s\n", data.dir.c_str());
    return 0;
  }
  std::printf("prepared %s (%s): vocabulary %lld", data.dir.c_str(), data.task.c_str(),
              static_cast<long long>(data.vocab_size));
  if (!lm && !o.joined_dictionary)
    std::printf(" (%s), %lld (%s)", data.target_lang.c_str(),
                static_cast<long long>(data.source_vocab_size), data.source_lang.c_str());
  std::printf("\n");
  for (const char* split : {"train", "valid", "test"}) {
    const nlohmann::json& s = data.info["splits"][split];
    if (lm) {
      std::printf("  %-5s %8lld sentences %9lld tokens %6lld <unk>\n", split,
                  s["sentences"].get<long long>(), s["tokens"].get<long long>(), s["unknown"].get<long long>());
    } else {
      std::printf("  %-5s %8lld pairs   %s %9lld tokens %6lld <unk>   %s %9lld tokens %6lld <unk>\n", split,
                  s["pairs"].get<long long>(), data.source_lang.c_str(), s["source"]["tokens"].get<long long>(),
                  s["source"]["unknown"].get<long long>(), data.target_lang.c_str(),
                  s["target"]["tokens"].get<long long>(), s["target"]["unknown"].get<long long>());
    }
  }
  return 0;
}

cli::Command prepare_command("prepare", "tokenize, learn BPE, build the dictionary and binarize a corpus",
                             run_prepare);

}  // namespace
}  // namespace payless
