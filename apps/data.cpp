// Preparing data folders and reading them back. See apps/data.h for the folder layout.
#include "apps/data.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/serialize.h"
#include "text/batching.h"
#include "text/corpus.h"
#include "text/lines.h"
#include "text/tokenizer.h"

namespace payless {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "payless prepared data";
// Bump when the meaning of the output files changes (tokenizer rules, file formats), so that
// folders prepared by an older payless are prepared again instead of silently reused.
constexpr int kVersion = 1;
constexpr const char* kInfoFile = "prepare.json";

// ---- small helpers -----------------------------------------------------------------------------

std::string join_path(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Size and checksum64 of a file's bytes (as stored: a gzipped input is hashed compressed, which
// is enough to notice any change).
nlohmann::json fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open for reading");
  Checksum64 sum;
  uint64_t bytes = 0;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    sum.update(buf.data(), static_cast<size_t>(n));
    bytes += static_cast<uint64_t>(n);
  }
  if (in.bad()) fail(path, ": read error");
  return {{"bytes", bytes}, {"checksum", hex64(sum.finish())}};
}

bool same_fingerprint(const nlohmann::json& a, const nlohmann::json& b) {
  return a.is_object() && b.is_object() && a.value("bytes", nlohmann::json()) == b.value("bytes", nlohmann::json()) &&
         a.value("checksum", nlohmann::json()) == b.value("checksum", nlohmann::json());
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail(temp, ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) fail(temp, ": write error (disk full?)");
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    fail(path, ": cannot rename ", temp, " to it");
  }
}

// Progress lines on stderr, each with the time its stage took.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet) {}

  template <typename... Parts>
  void say(const Parts&... parts) {
    if (quiet_) return;
    std::ostringstream line;
    (line << ... << parts);
    std::fprintf(stderr, "prepare: %s\n", line.str().c_str());
  }
  // Like say(), followed by "(X.XX s)" measured since the previous stage ended.
  template <typename... Parts>
  void done(const Parts&... parts) {
    const auto now = std::chrono::steady_clock::now();
    char took[32];
    std::snprintf(took, sizeof took, " (%.2f s)", std::chrono::duration<double>(now - lap_).count());
    lap_ = now;
    say(parts..., took);
  }
  // The closing line, with the time since the start.
  void finish(const std::string& dir) {
    char took[64];
    std::snprintf(took, sizeof took, "%.2f s", total_seconds());
    say(dir, " is ready (", took, " in all)");
  }
  double total_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  bool quiet_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lap_ = start_;
};

int64_t count_words_in(const std::vector<std::string>& tokenized_lines) {
  int64_t n = 0;
  for (const std::string& line : tokenized_lines) n += static_cast<int64_t>(split_spaces(line).size());
  return n;
}

// All lines of an input file; an empty file is an error naming it.
std::vector<std::string> read_corpus_lines(const std::string& path) {
  std::vector<std::string> lines = read_lines(path);
  if (lines.empty()) fail(path, ": empty corpus (no lines): nothing to prepare");
  return lines;
}

// ---- option checks ---------------------------------------------------------------------------

void check_common_options(const PrepareOptions& o) {
  if (o.out_dir.empty()) fail("prepare: no output folder given (--out DIR)");
  if (o.bpe_merges < 1) fail("prepare: --bpe-merges must be at least 1, got ", o.bpe_merges);
  if (o.bpe_min_frequency < 1)
    fail("prepare: --bpe-min-frequency must be at least 1, got ", o.bpe_min_frequency);
  if (o.padding_factor < 1) fail("prepare: --padding-factor must be at least 1, got ", o.padding_factor);
  if (o.dict_nwords == 0 || o.dict_nwords < -1 || (o.dict_nwords > 0 && o.dict_nwords <= Dictionary::kNumSpecial))
    fail("prepare: --nwords must be -1 (no limit) or more than the ", Dictionary::kNumSpecial,
         " special tokens, got ", o.dict_nwords);
}

nlohmann::json common_settings(const PrepareOptions& o) {
  return {{"bpe_merges", o.bpe_merges},       {"bpe_min_frequency", o.bpe_min_frequency},
          {"dict_threshold", o.dict_threshold}, {"dict_nwords", o.dict_nwords},
          {"padding_factor", o.padding_factor}};
}

void require_input(const std::string& path, const std::string& what) {
  if (!is_file(path)) fail(path, ": no such file (", what, ")");
}

// PREFIX.LANG, or PREFIX.LANG.gz.
std::string parallel_file(const std::string& prefix, const std::string& lang, const std::string& option) {
  const std::string plain = prefix + "." + lang, gz = plain + ".gz";
  const bool has_plain = is_file(plain), has_gz = is_file(gz);
  if (has_plain && has_gz)
    fail("both ", plain, " and ", gz, " exist (from --", option, " ", prefix,
         "): remove one so it is clear which to read");
  if (has_plain) return plain;
  if (has_gz) return gz;
  fail("no file ", plain, " or ", gz, " (from --", option, " ", prefix, " and language '", lang, "')");
}

// ---- reuse check -----------------------------------------------------------------------------

// prepare.json of dir, or null if there is none or it is not JSON.
nlohmann::json read_info_if_any(const std::string& dir) {
  const std::string path = join_path(dir, kInfoFile);
  if (!is_file(path)) return nullptr;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return nullptr;
  return j;
}

// Why dir cannot be reused ("" if it can): the same settings, the same input contents (paths
// may differ) and every output file as written.
std::string reuse_blocker_unchecked(const std::string& dir, const nlohmann::json& old,
                                    const nlohmann::json& settings, const nlohmann::json& inputs) {
  if (old.is_null()) return "no " + std::string(kInfoFile) + " yet";
  if (old.value("format", "") != kFormat || old.value("version", 0) != kVersion)
    return "prepared by another version of payless";
  if (old.value("settings", nlohmann::json()) != settings) return "the settings changed";
  const nlohmann::json old_inputs = old.value("inputs", nlohmann::json::object());
  if (old_inputs.size() != inputs.size()) return "the inputs changed";
  for (const auto& [role, fp] : inputs.items()) {
    if (!old_inputs.contains(role) || !same_fingerprint(old_inputs[role], fp))
      return "input " + fp.value("path", role) + " changed";
  }
  const nlohmann::json outputs = old.value("outputs", nlohmann::json::object());
  if (!outputs.is_object() || outputs.empty()) return "no outputs recorded";
  for (const auto& [file, fp] : outputs.items()) {
    const std::string path = join_path(dir, file);
    if (!is_file(path)) return path + " is missing";
    if (!same_fingerprint(fingerprint(path), fp)) return path + " changed after it was written";
  }
  return "";
}

std::string reuse_blocker(const std::string& dir, const nlohmann::json& old,
                          const nlohmann::json& settings, const nlohmann::json& inputs) {
  try {
    return reuse_blocker_unchecked(dir, old, settings, inputs);
  } catch (const nlohmann::json::exception&) {
    return std::string(kInfoFile) + " is malformed";
  }
}

// Deletes the outputs an earlier preparation listed (e.g. dict.es.txt after switching to a
// joined dictionary), and its prepare.json first, so a half-finished run is never taken for a
// complete one.
void clear_previous(const std::string& dir, const nlohmann::json& old) {
  std::error_code ec;
  fs::remove(join_path(dir, kInfoFile), ec);
  if (!old.is_object() || !old.contains("outputs") || !old["outputs"].is_object()) return;
  for (const auto& [file, fp] : old["outputs"].items()) {
    if (file.find('/') == std::string::npos && file != "..") fs::remove(join_path(dir, file), ec);
  }
}

void make_directory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail(dir, ": cannot create the folder (", ec.message(), ")");
}

// Records every output file (name -> size + checksum) and writes prepare.json last.
void finish_info(const std::string& dir, nlohmann::json& info, const std::vector<std::string>& files) {
  nlohmann::json outputs = nlohmann::json::object();
  for (const std::string& file : files) outputs[file] = fingerprint(join_path(dir, file));
  info["outputs"] = outputs;
  write_text_atomically(join_path(dir, kInfoFile), info.dump(1) + "\n");
}

nlohmann::json stats_json(const std::string& file, const BinarizeStats& s) {
  return {{"file", file}, {"sentences", s.sentences}, {"tokens", s.tokens}, {"unknown", s.unknown}};
}

std::string stats_text(const BinarizeStats& s) {
  std::ostringstream out;
  out << s.sentences << " sentences, " << s.tokens << " tokens, " << s.unknown << " <unk>";
  return out.str();
}

const char* const kSplits[] = {"train", "valid", "test"};

}  // namespace

// ---- prepare ---------------------------------------------------------------------------------

PreparedData prepare_lm(const PrepareOptions& o, bool* reused) {
  if (o.task != "lm") fail("prepare_lm: task is '", o.task, "', expected 'lm'");
  check_common_options(o);
  Progress progress(o.quiet);
  const std::string paths[3] = {o.train, o.valid, o.test};
  for (int s = 0; s < 3; ++s) require_input(paths[s], std::string("the ") + kSplits[s] + " split, --" + kSplits[s]);

  nlohmann::json settings = common_settings(o);
  settings["task"] = "lm";
  nlohmann::json inputs = nlohmann::json::object();
  for (int s = 0; s < 3; ++s) {
    inputs[kSplits[s]] = fingerprint(paths[s]);
    inputs[kSplits[s]]["path"] = paths[s];
  }
  const nlohmann::json old = read_info_if_any(o.out_dir);
  const std::string blocker = reuse_blocker(o.out_dir, old, settings, inputs);
  if (blocker.empty() && !o.force) {
    progress.say("data already prepared in ", o.out_dir, " (same settings and inputs)");
    if (reused) *reused = true;
    return load_prepared(o.out_dir);
  }
  if (reused) *reused = false;
  progress.say("preparing ", o.out_dir, o.force ? " (--force)" : "", blocker.empty() ? "" : " (" + blocker + ")");

  // Read and tokenize every split first, so a bad file fails before the slow steps (and before
  // touching DIR).
  std::vector<std::string> tokenized[3];
  for (int s = 0; s < 3; ++s) {
    tokenized[s] = tokenize_lines(read_corpus_lines(paths[s]), paths[s]);
    const int64_t words = count_words_in(tokenized[s]);
    if (s == 0 && words == 0) fail(paths[s], ": empty corpus (", tokenized[s].size(), " lines, all blank)");
    progress.done("tokenized ", paths[s], ": ", tokenized[s].size(), " lines, ", words, " words");
  }
  make_directory(o.out_dir);
  clear_previous(o.out_dir, old);

  WordCounts counts;
  count_words(tokenized[0], counts);
  BpeCodes codes = learn_bpe(counts, o.bpe_merges, o.bpe_min_frequency);
  codes.save(join_path(o.out_dir, "bpe.codes"));
  progress.done("learned ", codes.merges.size(), " BPE merges (asked for ", o.bpe_merges, ") on ",
                counts.size(), " distinct train words");

  Bpe bpe(codes);
  std::vector<std::string> subwords[3];
  for (int s = 0; s < 3; ++s) subwords[s] = bpe.apply_lines(tokenized[s], paths[s]);
  progress.done("applied BPE to the three splits");

  Dictionary dict;
  dict.add_lines(subwords[0]);
  dict.finalize(o.dict_threshold, o.dict_nwords, o.padding_factor);
  dict.save(join_path(o.out_dir, "dict.txt"));
  progress.done("dictionary: ", dict.size(), " entries (dict.txt)");

  nlohmann::json splits = nlohmann::json::object();
  std::vector<std::string> files = {"bpe.codes", "dict.txt"};
  for (int s = 0; s < 3; ++s) {
    BinarizeStats stats;
    const std::string file = std::string(kSplits[s]) + ".bin";
    binarize_lines(subwords[s], dict, paths[s], &stats).save(join_path(o.out_dir, file));
    splits[kSplits[s]] = stats_json(file, stats);
    files.push_back(file);
    progress.done(file, ": ", stats_text(stats));
  }

  nlohmann::json info = {{"format", kFormat},
                         {"version", kVersion},
                         {"task", "lm"},
                         {"settings", settings},
                         {"inputs", inputs},
                         {"bpe", {{"file", "bpe.codes"}, {"merges", codes.merges.size()}}},
                         {"dictionaries", {{"target", {{"file", "dict.txt"}, {"size", dict.size()}}}}},
                         {"vocab_size", dict.size()},
                         {"source_vocab_size", 0},
                         {"splits", splits}};
  info["seconds"] = progress.total_seconds();
  finish_info(o.out_dir, info, files);
  progress.finish(o.out_dir);
  return load_prepared(o.out_dir);
}

PreparedData prepare_translation(const PrepareOptions& o, bool* reused) {
  if (o.task != "translation") fail("prepare_translation: task is '", o.task, "', expected 'translation'");
  check_common_options(o);
  for (const std::string* lang : {&o.source_lang, &o.target_lang}) {
    if (lang->empty() || lang->find_first_of("/ .") != std::string::npos)
      fail("prepare: a language name must be a non-empty word without '/', '.' or spaces, got '", *lang, "'");
  }
  if (o.source_lang == o.target_lang)
    fail("prepare: --source-lang and --target-lang are both '", o.source_lang, "'");
  Progress progress(o.quiet);

  const std::string prefixes[3] = {o.train_prefix, o.valid_prefix, o.test_prefix};
  const std::string langs[2] = {o.source_lang, o.target_lang};
  std::string paths[3][2];  // [split][0 source, 1 target]
  for (int s = 0; s < 3; ++s)
    for (int side = 0; side < 2; ++side)
      paths[s][side] = parallel_file(prefixes[s], langs[side], std::string(kSplits[s]) + "-prefix");

  nlohmann::json settings = common_settings(o);
  settings["task"] = "translation";
  settings["source_lang"] = o.source_lang;
  settings["target_lang"] = o.target_lang;
  settings["joined_dictionary"] = o.joined_dictionary;
  nlohmann::json inputs = nlohmann::json::object();
  for (int s = 0; s < 3; ++s) {
    for (int side = 0; side < 2; ++side) {
      const std::string role = std::string(kSplits[s]) + "." + langs[side];
      inputs[role] = fingerprint(paths[s][side]);
      inputs[role]["path"] = paths[s][side];
    }
  }
  const nlohmann::json old = read_info_if_any(o.out_dir);
  const std::string blocker = reuse_blocker(o.out_dir, old, settings, inputs);
  if (blocker.empty() && !o.force) {
    progress.say("data already prepared in ", o.out_dir, " (same settings and inputs)");
    if (reused) *reused = true;
    return load_prepared(o.out_dir);
  }
  if (reused) *reused = false;
  progress.say("preparing ", o.out_dir, o.force ? " (--force)" : "", blocker.empty() ? "" : " (" + blocker + ")");

  // Read everything and check the alignment before any slow step (and before touching DIR).
  std::vector<std::string> tokenized[3][2];
  for (int s = 0; s < 3; ++s) {
    std::vector<std::string> raw[2] = {read_corpus_lines(paths[s][0]), read_corpus_lines(paths[s][1])};
    if (raw[0].size() != raw[1].size()) {
      fail("the ", kSplits[s], " split is not aligned: ", paths[s][0], " has ", raw[0].size(),
           " lines but ", paths[s][1], " has ", raw[1].size(),
           " (line i of one file must translate line i of the other)");
    }
    for (int side = 0; side < 2; ++side) {
      tokenized[s][side] = tokenize_lines(raw[side], paths[s][side]);
      const int64_t words = count_words_in(tokenized[s][side]);
      if (s == 0 && words == 0)
        fail(paths[s][side], ": empty corpus (", raw[side].size(), " lines, all blank)");
      progress.done("tokenized ", paths[s][side], ": ", raw[side].size(), " lines, ", words, " words");
    }
  }
  make_directory(o.out_dir);
  clear_previous(o.out_dir, old);

  // One joint BPE: the same word is split the same way in both languages (names, numbers).
  WordCounts counts;
  count_words(tokenized[0][0], counts);
  count_words(tokenized[0][1], counts);
  BpeCodes codes = learn_bpe(counts, o.bpe_merges, o.bpe_min_frequency);
  codes.save(join_path(o.out_dir, "bpe.codes"));
  progress.done("learned ", codes.merges.size(), " joint BPE merges (asked for ", o.bpe_merges,
                ") on ", counts.size(), " distinct train words");

  Bpe bpe(codes);
  std::vector<std::string> subwords[3][2];
  for (int s = 0; s < 3; ++s)
    for (int side = 0; side < 2; ++side)
      subwords[s][side] = bpe.apply_lines(tokenized[s][side], paths[s][side]);
  progress.done("applied BPE to the six files");

  std::vector<std::string> files = {"bpe.codes"};
  Dictionary dicts[2];  // [source, target]; equal when joined
  std::string dict_files[2];
  if (o.joined_dictionary) {
    dicts[0].add_lines(subwords[0][0]);
    dicts[0].add_lines(subwords[0][1]);
    dicts[0].finalize(o.dict_threshold, o.dict_nwords, o.padding_factor);
    dicts[0].save(join_path(o.out_dir, "dict.txt"));
    dicts[1] = dicts[0];
    dict_files[0] = dict_files[1] = "dict.txt";
    files.push_back("dict.txt");
    progress.done("joined dictionary: ", dicts[0].size(), " entries (dict.txt)");
  } else {
    for (int side = 0; side < 2; ++side) {
      dicts[side].add_lines(subwords[0][side]);
      dicts[side].finalize(o.dict_threshold, o.dict_nwords, o.padding_factor);
      dict_files[side] = "dict." + langs[side] + ".txt";
      dicts[side].save(join_path(o.out_dir, dict_files[side]));
      files.push_back(dict_files[side]);
      progress.done(langs[side], " dictionary: ", dicts[side].size(), " entries (", dict_files[side], ")");
    }
  }

  nlohmann::json splits = nlohmann::json::object();
  for (int s = 0; s < 3; ++s) {
    nlohmann::json split = {{"pairs", subwords[s][0].size()}};
    for (int side = 0; side < 2; ++side) {
      BinarizeStats stats;
      const std::string file = std::string(kSplits[s]) + "." + langs[side] + ".bin";
      binarize_lines(subwords[s][side], dicts[side], paths[s][side], &stats)
          .save(join_path(o.out_dir, file));
      split[side == 0 ? "source" : "target"] = stats_json(file, stats);
      files.push_back(file);
      progress.done(file, ": ", stats_text(stats));
    }
    splits[kSplits[s]] = split;
  }

  nlohmann::json info = {
      {"format", kFormat},
      {"version", kVersion},
      {"task", "translation"},
      {"source_lang", o.source_lang},
      {"target_lang", o.target_lang},
      {"settings", settings},
      {"inputs", inputs},
      {"bpe", {{"file", "bpe.codes"}, {"merges", codes.merges.size()}}},
      {"dictionaries",
       {{"source", {{"file", dict_files[0]}, {"size", dicts[0].size()}}},
        {"target", {{"file", dict_files[1]}, {"size", dicts[1].size()}}}}},
      {"vocab_size", dicts[1].size()},
      {"source_vocab_size", dicts[0].size()},
      {"splits", splits}};
  info["seconds"] = progress.total_seconds();
  finish_info(o.out_dir, info, files);
  progress.finish(o.out_dir);
  return load_prepared(o.out_dir);
}

PreparedData prepare_data(const PrepareOptions& options, bool* reused) {
  if (options.task == "lm") return prepare_lm(options, reused);
  if (options.task == "translation") return prepare_translation(options, reused);
  fail("prepare: unknown task '", options.task, "' (expected 'lm' or 'translation')");
}

// ---- reading a prepared folder ---------------------------------------------------------------

namespace {

std::string rerun_hint(const std::string& dir, const std::string& task) {
  return "run `payless prepare --task " + (task.empty() ? std::string("lm|translation") : task) +
         " --out " + dir + "`";
}

}  // namespace

PreparedData load_prepared(const std::string& dir) {
  const std::string path = join_path(dir, kInfoFile);
  if (!fs::is_directory(dir)) fail(dir, ": no such folder; ", rerun_hint(dir, ""), " first");
  if (!is_file(path)) {
    fail(dir, ": not a prepared data folder (", path, " is missing); ", rerun_hint(dir, ""), " first");
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json info = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (info.is_discarded() || !info.is_object())
    fail(path, ": not valid JSON; ", rerun_hint(dir, ""), " again");

  PreparedData data;
  data.dir = dir;
  // Every key the readers below use is checked here, once, so they can use at() freely.
  try {
    if (info.value("format", std::string()) != kFormat)
      fail(path, ": not a payless prepare.json (no \"format\": \"", kFormat, "\")");
    if (info.at("version").get<int>() != kVersion)
      fail(path, ": prepared by another version of payless (version ", info["version"].dump(),
           ", this one reads ", kVersion, "); ", rerun_hint(dir, info.value("task", "")), " again");
    data.task = info.at("task").get<std::string>();
    if (data.task != "lm" && data.task != "translation")
      fail(path, ": unknown task '", data.task, "' (expected 'lm' or 'translation')");
    const bool mt = data.task == "translation";
    if (mt) {
      data.source_lang = info.at("source_lang").get<std::string>();
      data.target_lang = info.at("target_lang").get<std::string>();
    }
    data.vocab_size = info.at("vocab_size").get<int64_t>();
    data.source_vocab_size = info.at("source_vocab_size").get<int64_t>();
    info.at("bpe").at("file").get<std::string>();
    for (const char* side : {"source", "target"}) {
      if (!mt && std::string(side) == "source") continue;
      info.at("dictionaries").at(side).at("file").get<std::string>();
      info.at("dictionaries").at(side).at("size").get<int64_t>();
    }
    for (const char* split : kSplits) {
      const nlohmann::json& entry = info.at("splits").at(split);
      if (mt) {
        entry.at("source").at("file").get<std::string>();
        entry.at("target").at("file").get<std::string>();
      } else {
        entry.at("file").get<std::string>();
      }
    }
    const nlohmann::json& outputs = info.at("outputs");
    if (!outputs.is_object() || outputs.empty()) fail(path, ": key 'outputs' lists no files");
    for (const auto& [file, fp] : outputs.items()) {
      if (!is_file(join_path(dir, file)))
        fail(dir, ": ", file, " is missing (", kInfoFile, " lists it); ", rerun_hint(dir, data.task), " again");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": malformed (", e.what(), "); ", rerun_hint(dir, data.task), " again");
  }
  data.info = std::move(info);
  return data;
}

Dictionary load_dictionary(const PreparedData& data, const std::string& side) {
  if (side != "source" && side != "target")
    fail("load_dictionary: side must be 'source' or 'target', got '", side, "'");
  const nlohmann::json& dicts = data.info.at("dictionaries");
  if (!dicts.contains(side))
    fail(data.dir, ": ", data.task == "lm" ? "language-model data has no source dictionary"
                                           : "no " + side + " dictionary in prepare.json");
  const std::string path = join_path(data.dir, dicts[side].at("file").get<std::string>());
  Dictionary dict = Dictionary::load(path);
  const int64_t expected = dicts[side].at("size").get<int64_t>();
  if (dict.size() != expected) {
    fail(path, ": ", dict.size(), " entries, but the data in ", data.dir, " was made with ", expected,
         " (was it replaced?); ", rerun_hint(data.dir, data.task), " again");
  }
  return dict;
}

Bpe load_bpe(const PreparedData& data) {
  return Bpe(BpeCodes::load(join_path(data.dir, data.info.at("bpe").at("file").get<std::string>())));
}

// ---- batches -----------------------------------------------------------------------------------

namespace {

void check_split_name(const PreparedData& data, const std::string& split) {
  if (!data.info.at("splits").contains(split))
    fail(data.dir, ": no split '", split, "' (prepared splits: train, valid, test)");
}

// Loads one binarized file and checks it was made with the dictionary the model will use.
Corpus load_corpus(const PreparedData& data, const nlohmann::json& entry, int64_t vocab_size) {
  const std::string path = join_path(data.dir, entry.at("file").get<std::string>());
  Corpus corpus = Corpus::load(path);
  if (corpus.vocab_size() != vocab_size) {
    fail(path, ": binarized with a vocabulary of ", corpus.vocab_size(), " but the dictionary has ",
         vocab_size, " entries; ", rerun_hint(data.dir, data.task), " again");
  }
  return corpus;
}

Corpus load_lm_split(const PreparedData& data, const std::string& split) {
  check_split_name(data, split);
  return load_corpus(data, data.info["splits"][split], data.vocab_size);
}

std::pair<Corpus, Corpus> load_pair_split(const PreparedData& data, const std::string& split) {
  check_split_name(data, split);
  const nlohmann::json& entry = data.info["splits"][split];
  return {load_corpus(data, entry.at("source"), data.source_vocab_size),
          load_corpus(data, entry.at("target"), data.vocab_size)};
}

Batch to_batch(const LmBatch& b) {
  Batch batch;
  batch.decoder_input = IdTensor({b.B, b.T}, b.input);  // (B, T)
  batch.target = IdTensor({b.B, b.T}, b.target);        // (B, T)
  batch.target_tokens = b.num_tokens;
  return batch;
}

Batch to_batch(const TranslationBatch& b) {
  Batch batch;
  batch.source = IdTensor({b.B, b.S}, b.source);                // (B, S)
  batch.decoder_input = IdTensor({b.B, b.T}, b.decoder_input);  // (B, T)
  batch.target = IdTensor({b.B, b.T}, b.target);                // (B, T)
  batch.target_tokens = b.num_target_tokens;
  return batch;
}

LmBatchOptions lm_options(const TrainConfig& c, bool shuffle) {
  LmBatchOptions o;
  o.tokens_per_sample = c.tokens_per_sample;
  o.max_tokens = c.max_tokens;
  o.seed = c.seed;
  o.shuffle = shuffle;
  return o;
}

TranslationBatchOptions translation_options(const TrainConfig& c, bool shuffle) {
  TranslationBatchOptions o;
  o.max_tokens = c.max_tokens;
  o.max_source_len = c.max_source_len;
  o.max_target_len = c.max_target_len;
  o.seed = c.seed;
  o.shuffle = shuffle;
  return o;
}

void report_skipped(const std::string& split, int64_t skipped, int64_t total, const TrainConfig& c) {
  if (skipped == 0) return;
  std::fprintf(stderr,
               "%s: left out %lld of %lld sentence pairs longer than max_source_len %lld / "
               "max_target_len %lld / max_tokens %lld (with </s>)\n",
               split.c_str(), static_cast<long long>(skipped), static_cast<long long>(total),
               static_cast<long long>(c.max_source_len), static_cast<long long>(c.max_target_len),
               static_cast<long long>(c.max_tokens));
}

nlohmann::json position_to_json(const BatchPosition& p, int64_t batches_per_epoch) {
  return {{"epoch", p.epoch}, {"index", p.index}, {"batches_per_epoch", batches_per_epoch}};
}

BatchPosition position_from_json(const nlohmann::json& j, int64_t batches_per_epoch) {
  auto whole = [&](const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      fail("data position ", j.dump(), ": expected an object with whole numbers >= 0 'epoch' and 'index'");
    return j[key].get<int64_t>();
  };
  BatchPosition p{whole("epoch"), whole("index")};
  if (j.contains("batches_per_epoch") && j["batches_per_epoch"] != batches_per_epoch) {
    fail("data position ", j.dump(), " was saved with ", j["batches_per_epoch"].dump(),
         " batches per epoch, but this data and batching give ", batches_per_epoch,
         " (the prepared data or max_tokens/tokens_per_sample/max lengths changed)");
  }
  return p;
}

class LmTrainSource : public BatchSource {
 public:
  LmTrainSource(const Corpus& corpus, const LmBatchOptions& options) : batcher_(corpus, options) {}
  Batch next() override { return to_batch(batcher_.next()); }
  int64_t epoch() const override { return batcher_.position().epoch + 1; }
  nlohmann::json position() const override {
    return position_to_json(batcher_.position(), batches_per_epoch());
  }
  void restore(const nlohmann::json& position) override {
    batcher_.set_position(position_from_json(position, batches_per_epoch()));
  }
  int64_t batches_per_epoch() const override { return batcher_.batches_per_epoch(); }

 private:
  LmBatcher batcher_;
};

class TranslationTrainSource : public BatchSource {
 public:
  TranslationTrainSource(Corpus source, Corpus target, const TranslationBatchOptions& options)
      : batcher_(std::move(source), std::move(target), options) {}
  Batch next() override { return to_batch(batcher_.next()); }
  int64_t epoch() const override { return batcher_.position().epoch + 1; }
  nlohmann::json position() const override {
    return position_to_json(batcher_.position(), batches_per_epoch());
  }
  void restore(const nlohmann::json& position) override {
    batcher_.set_position(position_from_json(position, batches_per_epoch()));
  }
  int64_t batches_per_epoch() const override { return batcher_.batches_per_epoch(); }
  const TranslationBatcher& batcher() const { return batcher_; }

 private:
  TranslationBatcher batcher_;
};

}  // namespace

std::unique_ptr<BatchSource> make_train_source(const PreparedData& data, const TrainConfig& config) {
  if (data.task == "lm") {
    return std::make_unique<LmTrainSource>(load_lm_split(data, "train"), lm_options(config, true));
  }
  auto [source, target] = load_pair_split(data, "train");
  const int64_t total = source.num_sentences();
  auto out = std::make_unique<TranslationTrainSource>(std::move(source), std::move(target),
                                                      translation_options(config, true));
  report_skipped("train", out->batcher().num_skipped(), total, config);
  return out;
}

std::vector<Batch> make_eval_batches(const PreparedData& data, const std::string& split,
                                     const TrainConfig& config) {
  std::vector<Batch> batches;
  if (data.task == "lm") {
    LmBatcher batcher(load_lm_split(data, split), lm_options(config, false));
    for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) batches.push_back(to_batch(batcher.batch({0, i})));
    return batches;
  }
  auto [source, target] = load_pair_split(data, split);
  const int64_t total = source.num_sentences();
  TranslationBatcher batcher(std::move(source), std::move(target), translation_options(config, false));
  report_skipped(split, batcher.num_skipped(), total, config);
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) batches.push_back(to_batch(batcher.batch({0, i})));
  return batches;
}

// ---- raw text ------------------------------------------------------------------------------

std::vector<int32_t> encode_text(const std::string& line, Bpe& bpe, const Dictionary& dict) {
  return dict.encode(bpe.apply_line(tokenize_line(line)), /*append_eos=*/false);
}

std::string decode_text(const std::vector<int32_t>& ids, const Dictionary& dict) {
  return detokenize_line(remove_bpe(dict.decode(ids)));
}

}  // namespace payless
