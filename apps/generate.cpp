// payless generate: translates a prepared split (valid or test) and reports BLEU.
//
//   payless generate --checkpoint runs/bible-mt/dynamic/checkpoint_best.safetensors
//                       --data runs/bible-mt/data --split test [--beam 4] [--lenpen 1] [--show 5]
//
// Hypotheses are detokenized (BPE removed, then the tokenizer's inverse) and scored with corpus
// BLEU as sacreBLEU computes it by default (text/bleu.h), against the raw reference lines when
// the reference file named in prepare.json is still there unchanged, and otherwise against the
// detokenized reference ids (where words unknown to the dictionary are lost as <unk>).
// Also prints a few examples (S source, T reference, H hypothesis with its score) and the speed.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "apps/cli.h"
#include "apps/translation_common.h"
#include "core/parallel.h"
#include "core/serialize.h"
#include "text/bleu.h"
#include "text/batching.h"
#include "text/corpus.h"
#include "text/lines.h"

namespace payless {
namespace {

std::string join_path(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

// The raw text prepare.json recorded for `role` ("test.en"), if the file is still there with the
// same bytes and `lines` lines; otherwise empty (the caller decodes ids instead).
std::vector<std::string> raw_lines_if_unchanged(const PreparedData& data, const std::string& role, int64_t lines) {
  const nlohmann::json& inputs = data.info.value("inputs", nlohmann::json::object());
  if (!inputs.contains(role) || !inputs[role].contains("path")) return {};
  const std::string path = inputs[role]["path"].get<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  Checksum64 sum;
  uint64_t bytes = 0;
  std::vector<char> buf(1 << 16);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    sum.update(buf.data(), static_cast<size_t>(in.gcount()));
    bytes += static_cast<uint64_t>(in.gcount());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum.finish()));
  if (inputs[role].value("bytes", uint64_t(0)) != bytes || inputs[role].value("checksum", std::string()) != hex)
    return {};
  std::vector<std::string> text = read_lines(path);
  if (static_cast<int64_t>(text.size()) != lines) return {};
  return text;
}

int run_generate(cli::Args& args) {
  const std::string checkpoint = args.require("checkpoint", "translation model checkpoint (.safetensors)");
  const std::string data_dir = args.require("data", "prepared data folder the model was trained on");
  const std::string split = args.get("split", "test", "prepared split to translate: train, valid or test");
  BeamSearchOptions options = beam_options_from_args(args);
  const int64_t batch_size = args.get_int("batch-size", 32, "sentences decoded together");
  const int64_t show = args.get_int("show", 5, "examples to print (source, reference, hypothesis)");
  const int64_t limit = args.get_int("max-sentences", 0, "translate only the first N sentences (0 = all)");
  const std::string output = args.get("output", "", "also write the hypotheses to this file, one per line");
  const int64_t threads = args.get_int("threads", std::max(1u, std::thread::hardware_concurrency()), "threads");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Translates a prepared split and reports BLEU (sacreBLEU's defaults).").c_str());
    return 0;
  }
  args.finish();
  check_beam_options(options);
  if (batch_size < 1) fail("--batch-size must be at least 1, got ", batch_size);
  if (show < 0 || limit < 0) fail("--show and --max-sentences must not be negative");
  set_num_threads(static_cast<int>(threads));

  LoadedTranslator t = load_translator(checkpoint, data_dir);
  const nlohmann::json& splits = t.data.info.at("splits");
  if (!splits.contains(split)) fail(data_dir, ": no split '", split, "' (prepared splits: train, valid, test)");
  Corpus source = Corpus::load(join_path(data_dir, splits[split].at("source").at("file").get<std::string>()));
  Corpus target = Corpus::load(join_path(data_dir, splits[split].at("target").at("file").get<std::string>()));
  check_parallel(source, target);
  if (source.vocab_size() != t.source_dict.size() || target.vocab_size() != t.target_dict.size())
    fail(data_dir, ": the ", split, " split was binarized with other dictionaries; prepare the folder again");
  const int64_t total = source.num_sentences();

  const std::string tgt_role = split + "." + t.data.target_lang, src_role = split + "." + t.data.source_lang;
  std::vector<std::string> raw_refs = raw_lines_if_unchanged(t.data, tgt_role, total);
  std::vector<std::string> raw_srcs = raw_lines_if_unchanged(t.data, src_role, total);

  // Sentences the encoder can take (max_positions with </s>), up to --max-sentences.
  const int64_t max_source = t.model->config().encoder.max_positions - 1;
  std::vector<int64_t> kept;
  std::vector<std::vector<int32_t>> sources;
  int64_t too_long = 0;
  for (int64_t i = 0; i < total && (limit == 0 || static_cast<int64_t>(kept.size()) < limit); ++i) {
    if (source.sentence_length(i) > max_source) {
      ++too_long;
      continue;
    }
    kept.push_back(i);
    sources.push_back(source.sentence_ids(i));
  }
  if (too_long > 0)
    std::fprintf(stderr, "left out %lld sentences longer than the model's %lld source tokens\n",
                 static_cast<long long>(too_long), static_cast<long long>(max_source));
  if (kept.empty()) fail(data_dir, ": no sentence of the ", split, " split to translate");
  std::fprintf(stderr, "translating %zu sentences of %s %s (%s)\n", kept.size(), data_dir.c_str(), split.c_str(),
               describe(options).c_str());

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<Hypothesis>> found = translate(*t.model, sources, options, batch_size);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<std::string> hyps, refs;
  int64_t generated = 0;
  for (size_t k = 0; k < kept.size(); ++k) {
    std::vector<int32_t> ids = found[k][0].tokens;
    generated += static_cast<int64_t>(ids.size());
    if (!ids.empty() && ids.back() == kEosId) ids.pop_back();
    hyps.push_back(decode_text(ids, t.target_dict));
    refs.push_back(raw_refs.empty() ? decode_text(target.sentence_ids(kept[k]), t.target_dict) : raw_refs[kept[k]]);
  }
  for (int64_t k = 0; k < std::min<int64_t>(show, static_cast<int64_t>(kept.size())); ++k) {
    const int64_t i = kept[k];
    const std::string src = raw_srcs.empty() ? decode_text(source.sentence_ids(i), t.source_dict) : raw_srcs[i];
    std::printf("S-%lld\t%s\nT-%lld\t%s\n", static_cast<long long>(i), src.c_str(), static_cast<long long>(i),
                refs[k].c_str());
    for (const Hypothesis& h : found[k]) {
      std::vector<int32_t> ids(h.tokens.begin(), h.tokens.end() - (h.tokens.back() == kEosId ? 1 : 0));
      std::printf("H-%lld\t%.4f\t%s\n", static_cast<long long>(i), h.score, decode_text(ids, t.target_dict).c_str());
    }
  }
  if (!output.empty()) write_lines(output, hyps);

  BleuScore bleu = corpus_bleu(hyps, refs);
  std::printf("%s %s: %s\n%s\n", data_dir.c_str(), split.c_str(), bleu.format(2).c_str(), bleu.signature().c_str());
  std::printf("references: %s\n", raw_refs.empty() ? "detokenized reference ids (raw file not found or changed)"
                                                    : "the raw reference file");
  std::printf("%zu sentences in %.1f s: %.1f sentences/s, %.0f generated tokens/s (%lld threads, batch %lld)\n",
              kept.size(), seconds, kept.size() / std::max(seconds, 1e-9), generated / std::max(seconds, 1e-9),
              static_cast<long long>(threads), static_cast<long long>(batch_size));
  nlohmann::json line = {{"generate", data_dir + " " + split}, {"bleu", bleu.score}, {"sentences", kept.size()},
                         {"seconds", seconds}, {"beam", options.beam}, {"lenpen", options.lenpen},
                         {"signature", bleu.signature()}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

cli::Command generate_command("generate", "translate a prepared split and report BLEU", run_generate);

}  // namespace
}  // namespace payless
