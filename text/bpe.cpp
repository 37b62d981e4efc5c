// BPE learning and application, subword-nmt 0.2 compatible. The algorithm is described in bpe.h;
// this file adds the bookkeeping that makes learning fast.
#include "text/bpe.h"

#include <algorithm>
#include <fstream>
#include <queue>

#include "core/error.h"
#include "text/lines.h"
#include "text/unicode.h"

namespace payless {

void count_words(const std::vector<std::string>& tokenized_lines, WordCounts& counts) {
  for (const std::string& line : tokenized_lines) {
    for (std::string& word : split_spaces(line)) ++counts[std::move(word)];
  }
}

// ---- codes file ------------------------------------------------------------------------------

BpeCodes BpeCodes::load(const std::string& path) {
  std::vector<std::string> lines = read_lines(path);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty() || lines[0].rfind("#version:", 0) != 0) {
    fail(path, ":1: expected the header line '#version: 0.2' of a subword-nmt codes file, found '",
         lines.empty() ? std::string("<empty file>") : lines[0], "'");
  }
  const std::vector<std::string> header = split_spaces(lines[0].substr(9));
  if (header.size() != 1 || (header[0] != "0.2" && header[0] != "0.2.0")) {
    fail(path, ":1: unsupported codes version '", lines[0].substr(9),
         "': payless reads subword-nmt version 0.2 codes (learned with subword-nmt >= 0.2)");
  }
  BpeCodes codes;
  codes.merges.reserve(lines.size() - 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    // Exactly two non-empty symbols separated by one space, as subword-nmt writes them.
    const std::string& line = lines[i];
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      fail(path, ":", i + 1, ": expected a merge 'left right' (two symbols separated by one "
           "space), found '", line, "'");
    }
    try {
      check_utf8(line);
    } catch (const Error& e) {
      fail(path, ":", i + 1, ": ", e.what());
    }
    codes.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return codes;
}

void BpeCodes::save(const std::string& path) const {
  std::vector<std::string> lines;
  lines.reserve(merges.size() + 1);
  lines.push_back("#version: 0.2");
  for (const auto& merge : merges) lines.push_back(merge.first + " " + merge.second);
  write_lines(path, lines);
}

// ---- learning --------------------------------------------------------------------------------

namespace {

// Splits a word into code points, the last carrying "</w>": "low" -> {"l", "o", "w</w>"}.
std::vector<std::string> initial_symbols(const std::string& word) {
  std::vector<std::string> symbols;
  char32_t cp;
  for (size_t pos = 0; pos < word.size();) {
    const int n = decode_utf8(word, pos, &cp);
    symbols.push_back(word.substr(pos, n));
    pos += n;
  }
  if (!symbols.empty()) symbols.back() += kEndOfWord;
  return symbols;
}

// Learning state. Symbols are interned as ints; a pair is a 64-bit key (left << 32 | right).
//   pair_count[p]  = sum over words of freq(word) * occurrences of p in the word (exact)
//   pair_words[p]  = indices of words that contained p when it appeared in them; it may hold
//                    words that no longer contain p (checked when visited), never misses one.
//   heap           = (count, pair) entries; an entry whose count differs from pair_count is
//                    stale and skipped when it reaches the top ("lazy deletion").
// A merge of p = (a, b) only changes the words in pair_words[p]: each is re-counted from
// scratch (subtract its old pairs, add its new ones), which is simple and exact. Pairs that
// are new after a merge all contain the new symbol ab, so only those need the word's index.
class BpeLearner {
 public:
  BpeLearner(const WordCounts& counts) {
    // Sort words so that interning order, and hence everything else, is deterministic.
    std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [word, count] : sorted) {
      if (word.empty() || count <= 0) continue;
      std::vector<int> symbols;
      try {
        for (const std::string& s : initial_symbols(word)) symbols.push_back(intern(s));
      } catch (const Error& e) {
        fail("learn_bpe: word '", word, "': ", e.what());
      }
      words_.push_back({std::move(symbols), count});
    }
    for (size_t w = 0; w < words_.size(); ++w) {
      add_pairs(static_cast<int>(w), +1);
      for_each_pair(words_[w].symbols, [&](uint64_t key) { pair_words_[key].push_back(w); });
    }
    for (const auto& [key, count] : pair_count_) push(key);
  }

  BpeCodes learn(int64_t num_merges, int64_t min_frequency) {
    BpeCodes codes;
    std::vector<int> seen(words_.size(), -1);  // merge number that last visited each word
    for (int64_t m = 0; m < num_merges; ++m) {
      uint64_t best;
      if (!pop_best(&best) || pair_count_[best] < std::max<int64_t>(min_frequency, 1)) break;
      const int a = static_cast<int>(best >> 32), b = static_cast<int>(best & 0xFFFFFFFFu);
      codes.merges.emplace_back(symbols_[a], symbols_[b]);
      const int ab = intern(symbols_[a] + symbols_[b]);

      touched_.clear();
      const std::vector<int> candidates = std::move(pair_words_[best]);
      pair_words_.erase(best);
      for (int w : candidates) {
        if (seen[w] == m || !contains_pair(words_[w].symbols, a, b)) continue;
        seen[w] = static_cast<int>(m);
        add_pairs(w, -1);
        words_[w].symbols = merge_pair(words_[w].symbols, a, b, ab);
        add_pairs(w, +1);
        for_each_pair(words_[w].symbols, [&](uint64_t key) {
          if (static_cast<int>(key >> 32) == ab || static_cast<int>(key & 0xFFFFFFFFu) == ab) {
            pair_words_[key].push_back(w);
          }
        });
      }
      PAYLESS_ASSERT(pair_count_[best] == 0);  // non-overlapping merging removes every (a, b)
      std::sort(touched_.begin(), touched_.end());
      touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
      for (uint64_t key : touched_) push(key);
    }
    return codes;
  }

 private:
  struct Word {
    std::vector<int> symbols;
    int64_t freq;
  };

  int intern(const std::string& s) {
    auto [it, inserted] = symbol_id_.emplace(s, static_cast<int>(symbols_.size()));
    if (inserted) symbols_.push_back(s);
    return it->second;
  }

  template <typename F>
  static void for_each_pair(const std::vector<int>& symbols, F f) {
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      f((static_cast<uint64_t>(symbols[i]) << 32) | static_cast<uint32_t>(symbols[i + 1]));
    }
  }

  static bool contains_pair(const std::vector<int>& s, int a, int b) {
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      if (s[i] == a && s[i + 1] == b) return true;
    }
    return false;
  }

  void add_pairs(int w, int sign) {
    const int64_t delta = sign * words_[w].freq;
    for_each_pair(words_[w].symbols, [&](uint64_t key) {
      pair_count_[key] += delta;
      touched_.push_back(key);
    });
  }

  // Heap order: larger count first; equal counts -> larger (left, right) strings first.
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  bool lower_priority(const Entry& x, const Entry& y) const {
    if (x.count != y.count) return x.count < y.count;
    const std::string& xl = symbols_[x.key >> 32];
    const std::string& yl = symbols_[y.key >> 32];
    if (xl != yl) return xl < yl;
    return symbols_[x.key & 0xFFFFFFFFu] < symbols_[y.key & 0xFFFFFFFFu];
  }
  void push(uint64_t key) {
    const int64_t count = pair_count_[key];
    if (count > 0) {
      heap_.push_back({count, key});
      std::push_heap(heap_.begin(), heap_.end(),
                     [this](const Entry& x, const Entry& y) { return lower_priority(x, y); });
    }
  }
  bool pop_best(uint64_t* key) {
    const auto cmp = [this](const Entry& x, const Entry& y) { return lower_priority(x, y); };
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), cmp);
      const Entry top = heap_.back();
      heap_.pop_back();
      if (top.count == pair_count_[top.key]) {
        *key = top.key;
        return true;
      }
    }
    return false;
  }

  std::vector<Word> words_;
  std::vector<std::string> symbols_;
  std::unordered_map<std::string, int> symbol_id_;
  std::unordered_map<uint64_t, int64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<int>> pair_words_;
  std::vector<Entry> heap_;
  std::vector<uint64_t> touched_;

 public:
  // Replaces every non-overlapping (a, b), scanning left to right, by ab.
  static std::vector<int> merge_pair(const std::vector<int>& s, int a, int b, int ab) {
    std::vector<int> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
        out.push_back(ab);
        ++i;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }
};

}  // namespace

BpeCodes learn_bpe(const WordCounts& counts, int64_t num_merges, int64_t min_frequency) {
  if (num_merges < 0) fail("learn_bpe: number of merges must be >= 0, got ", num_merges);
  return BpeLearner(counts).learn(num_merges, min_frequency);
}

// ---- applying --------------------------------------------------------------------------------

Bpe::Bpe(BpeCodes codes) : codes_(std::move(codes)) {
  rank_.reserve(codes_.merges.size());
  for (size_t i = 0; i < codes_.merges.size(); ++i) {
    // Symbols never contain spaces, so "left right" identifies the pair.
    rank_.emplace(codes_.merges[i].first + " " + codes_.merges[i].second, static_cast<int>(i));
  }
}

const std::vector<std::string>& Bpe::segment(const std::string& word) {
  auto cached = cache_.find(word);
  if (cached != cache_.end()) return cached->second;

  std::vector<std::string> symbols = initial_symbols(word);
  while (symbols.size() > 1) {
    // The pair with the lowest rank; then merge all its non-overlapping occurrences.
    int best_rank = -1;
    std::string best_key;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      std::string key = symbols[i] + " " + symbols[i + 1];
      auto it = rank_.find(key);
      if (it != rank_.end() && (best_rank < 0 || it->second < best_rank)) {
        best_rank = it->second;
        best_key = std::move(key);
      }
    }
    if (best_rank < 0) break;
    const auto& [left, right] = codes_.merges[best_rank];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(std::move(symbols[i]));
      }
    }
    symbols = std::move(merged);
  }
  // Drop the end-of-word marker: from the last symbol, or the whole symbol if it is only that
  // (possible with codes from elsewhere).
  if (!symbols.empty()) {
    std::string& last = symbols.back();
    const size_t marker = std::char_traits<char>::length(kEndOfWord);
    PAYLESS_ASSERT(last.size() >= marker && last.compare(last.size() - marker, marker, kEndOfWord) == 0);
    last.resize(last.size() - marker);
    if (last.empty()) symbols.pop_back();
  }
  return cache_.emplace(word, std::move(symbols)).first->second;
}

std::string Bpe::apply_line(const std::string& tokenized_line) {
  std::string out;
  for (const std::string& token : split_spaces(tokenized_line)) {
    if (token.size() >= 2 && token.compare(token.size() - 2, 2, "@@") == 0) {
      fail("token '", token, "' ends in \"@@\", the BPE continuation marker: removing \"@@ \" "
           "would glue it to the next token");
    }
    const std::vector<std::string>& pieces = segment(token);
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (!out.empty()) out += ' ';
      out += pieces[i];
      if (i + 1 < pieces.size()) out += "@@";
    }
  }
  return out;
}

std::vector<std::string> Bpe::apply_lines(const std::vector<std::string>& tokenized_lines,
                                          const std::string& name) {
  std::vector<std::string> out;
  out.reserve(tokenized_lines.size());
  for (size_t i = 0; i < tokenized_lines.size(); ++i) {
    try {
      out.push_back(apply_line(tokenized_lines[i]));
    } catch (const Error& e) {
      fail(name, ":", i + 1, ": ", e.what());
    }
  }
  return out;
}

std::string remove_bpe(const std::string& line) {
  std::string padded = line + " ";
  std::string out;
  out.reserve(padded.size());
  for (size_t i = 0; i < padded.size();) {
    if (padded.compare(i, 3, "@@ ") == 0) {
      i += 3;
    } else {
      out += padded[i++];
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace payless
