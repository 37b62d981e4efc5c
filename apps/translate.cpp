// payless translate: translates raw sentences with a trained model, one per line.
//
//   payless translate --checkpoint runs/bible-mt/dynamic/checkpoint_best.safetensors
//                        --data runs/bible-mt/data [--input FILE] [--beam 4] [--lenpen 1] [--nbest 1]
//
// Each input line goes through the training data's pipeline (tokenizer, BPE, dictionary; words
// never seen become <unk>), is translated by beam search (models/beam_search.h) in batches of
// similar lengths, and comes back detokenized, in input order. A blank line gives a blank line
// (and no lines at all with --nbest > 1).
// With --nbest N each input line gives N lines "LINE<TAB>SCORE<TAB>TRANSLATION", best first.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "apps/cli.h"
#include "apps/translation_common.h"
#include "core/parallel.h"
#include "text/lines.h"

namespace payless {
namespace {

int run_translate(cli::Args& args) {
  const std::string checkpoint = args.require("checkpoint", "translation model checkpoint (.safetensors)");
  const std::string data_dir = args.require("data", "prepared data folder the model was trained on");
  const std::string input = args.get("input", "-", "file of sentences, one per line (- = standard input)");
  BeamSearchOptions options = beam_options_from_args(args);
  const int64_t batch_size = args.get_int("batch-size", 32, "sentences decoded together");
  const int64_t threads = args.get_int("threads", std::max(1u, std::thread::hardware_concurrency()), "threads");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Translates raw sentences (one per line) with a trained model.").c_str());
    return 0;
  }
  args.finish();
  check_beam_options(options);
  if (batch_size < 1) fail("--batch-size must be at least 1, got ", batch_size);
  set_num_threads(static_cast<int>(threads));

  LoadedTranslator t = load_translator(checkpoint, data_dir);
  Bpe bpe = load_bpe(t.data);
  std::vector<std::string> lines;
  if (input == "-") {
    for (std::string line; std::getline(std::cin, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(line);
    }
  } else {
    lines = read_lines(input);
  }
  const std::string where = input == "-" ? std::string("standard input") : input;

  // Encode every non-blank line; the encoder sees at most max_positions tokens with </s>.
  const int64_t max_source = t.model->config().encoder.max_positions - 1;
  std::vector<std::vector<int32_t>> sources;
  std::vector<size_t> line_of;  // sources[i] is input line line_of[i]
  int64_t unknown = 0, tokens = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<int32_t> ids = encode_text(lines[i], bpe, t.source_dict);
    if (static_cast<int64_t>(ids.size()) > max_source)
      fail(where, ":", i + 1, ": ", ids.size(), " subword tokens, more than the model's limit of ", max_source);
    for (int32_t id : ids) unknown += id == kUnkId;
    tokens += static_cast<int64_t>(ids.size());
    sources.push_back(std::move(ids));
    line_of.push_back(i);
  }
  if (unknown > 0)
    std::fprintf(stderr, "note: %lld of %lld source subwords are unknown to the model's dictionary (<unk>)\n",
                 static_cast<long long>(unknown), static_cast<long long>(tokens));

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<Hypothesis>> found = translate(*t.model, sources, options, batch_size);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<std::vector<const Hypothesis*>> per_line(lines.size());
  for (size_t i = 0; i < found.size(); ++i)
    for (const Hypothesis& h : found[i]) per_line[line_of[i]].push_back(&h);
  auto text_of = [&](const Hypothesis& h) {
    std::vector<int32_t> ids(h.tokens.begin(), h.tokens.end());
    if (!ids.empty() && ids.back() == kEosId) ids.pop_back();
    return decode_text(ids, t.target_dict);
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    if (options.nbest == 1) {
      std::printf("%s\n", per_line[i].empty() ? "" : text_of(*per_line[i][0]).c_str());
      continue;
    }
    for (const Hypothesis* h : per_line[i]) std::printf("%zu\t%.4f\t%s\n", i + 1, h->score, text_of(*h).c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "translated %zu sentences in %.1f s (%.1f sentences/s; %s, %lld threads)\n", sources.size(),
               seconds, sources.size() / std::max(seconds, 1e-9), describe(options).c_str(),
               static_cast<long long>(threads));
  return 0;
}

cli::Command translate_command("translate", "translate raw sentences with a trained model (beam search)", run_translate);

}  // namespace
}  // namespace payless
