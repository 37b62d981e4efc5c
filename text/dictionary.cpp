// fairseq-compatible vocabulary. See dictionary.h.
#include "text/dictionary.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "core/error.h"
#include "text/lines.h"

namespace payless {

Dictionary::Dictionary() {
  for (const char* special : {"<s>", "<pad>", "</s>", "<unk>"}) add(special, 1);
  PAYLESS_ASSERT(index("<unk>") == kUnk && index("<pad>") == kPad && index("</s>") == kEos);
}

int32_t Dictionary::add(const std::string& token, int64_t count) {
  auto [it, inserted] = ids_.emplace(token, static_cast<int32_t>(tokens_.size()));
  if (inserted) {
    tokens_.push_back(token);
    counts_.push_back(count);
  } else {
    counts_[it->second] += count;
  }
  return it->second;
}

void Dictionary::add_lines(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    for (const std::string& token : split_spaces(line)) add(token, 1);
  }
}

void Dictionary::finalize(int64_t threshold, int64_t nwords, int64_t padding_factor) {
  // Order of the non-special tokens: count descending, ties by token (byte order of UTF-8 is
  // code point order), which is what fairseq's Counter(sorted(...)).most_common() yields.
  std::vector<int32_t> order(tokens_.size() - kNumSpecial);
  std::iota(order.begin(), order.end(), kNumSpecial);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    if (counts_[a] != counts_[b]) return counts_[a] > counts_[b];
    return tokens_[a] < tokens_[b];
  });
  const int64_t limit = nwords > 0 ? std::max<int64_t>(nwords - kNumSpecial, 0)
                                   : static_cast<int64_t>(order.size());

  std::vector<std::string> tokens(tokens_.begin(), tokens_.begin() + kNumSpecial);
  std::vector<int64_t> counts(counts_.begin(), counts_.begin() + kNumSpecial);
  for (int64_t i = 0; i < static_cast<int64_t>(order.size()) && i < limit; ++i) {
    if (counts_[order[i]] < threshold) break;  // sorted by count: the rest is smaller
    tokens.push_back(tokens_[order[i]]);
    counts.push_back(counts_[order[i]]);
  }
  if (padding_factor > 1) {
    for (int i = 0; tokens.size() % padding_factor != 0; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "madeupword%04d", i);
      tokens.push_back(name);
      counts.push_back(0);
    }
  }
  tokens_ = std::move(tokens);
  counts_ = std::move(counts);
  ids_.clear();
  for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int32_t>(i));
}

Dictionary Dictionary::load(const std::string& path) {
  Dictionary dict;
  const std::vector<std::string> lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto bad = [&](const std::string& why) {
      fail(path, ":", i + 1, ": ", why, " (a dict.txt line is '<token> <count>'), found '",
           lines[i], "'");
    };
    // fairseq: line.rstrip().rsplit(" ", 1), with an optional flag field before that.
    std::string line = lines[i];
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    size_t space = line.rfind(' ');
    if (space == std::string::npos) bad("no space between token and count");
    std::string field = line.substr(space + 1);
    bool overwrite = false;
    if (field == "#fairseq:overwrite") {
      overwrite = true;
      line.resize(space);
      space = line.rfind(' ');
      if (space == std::string::npos) bad("no space between token and count");
      field = line.substr(space + 1);
    }
    const std::string token = line.substr(0, space);
    if (token.empty()) bad("empty token");
    if (field.empty() || field.size() > 18 ||
        !std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      bad("count '" + field + "' is not a non-negative integer");
    }
    if (dict.contains(token) && !overwrite) {
      bad("token '" + token + "' is listed twice (or is a special) without #fairseq:overwrite");
    }
    const int64_t count = std::stoll(field);
    if (dict.contains(token)) {
      dict.counts_[dict.index(token)] = count;
    } else {
      dict.add(token, count);
    }
  }
  return dict;
}

void Dictionary::save(const std::string& path) const {
  std::vector<std::string> lines;
  lines.reserve(tokens_.size());
  for (size_t i = kNumSpecial; i < tokens_.size(); ++i) {
    lines.push_back(tokens_[i] + " " + std::to_string(counts_[i]));
  }
  write_lines(path, lines);
}

bool Dictionary::contains(std::string_view token) const {
  return ids_.count(std::string(token)) != 0;
}

int32_t Dictionary::index(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? kUnk : it->second;
}

const std::string& Dictionary::token(int32_t id) const {
  if (id < 0 || id >= size()) fail("token id ", id, " is outside the dictionary [0, ", size(), ")");
  return tokens_[id];
}

int64_t Dictionary::count(int32_t id) const {
  token(id);  // range check
  return counts_[id];
}

std::vector<int32_t> Dictionary::encode(const std::string& line, bool append_eos,
                                        int64_t* num_unknown) const {
  std::vector<int32_t> ids;
  for (const std::string& token : split_spaces(line)) {
    auto it = ids_.find(token);
    if (it != ids_.end()) {
      ids.push_back(it->second);
    } else {
      ids.push_back(kUnk);
      if (num_unknown) ++*num_unknown;
    }
  }
  if (append_eos) ids.push_back(kEos);
  return ids;
}

std::string Dictionary::decode(const std::vector<int32_t>& ids, bool keep_specials) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& t = token(id);
    if (id == kPad || (!keep_specials && (id == kBos || id == kEos))) continue;
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

}  // namespace payless
