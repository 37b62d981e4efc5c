// Byte-pair encoding (Sennrich et al. 2016) as subword-nmt 0.2 does it: learning merges from
// word counts, reading and writing subword-nmt codes files, and splitting words into subwords.
//
// Words are sequences of code points (never bytes), the last one carrying the end-of-word
// marker "</w>": "low" starts as  l o w</w>. Learning repeatedly merges the most frequent
// adjacent pair of symbols, counted over all words weighted by word frequency (a pair that
// occurs twice in a word counts twice). Ties go to the pair that is larger as a (left, right)
// string pair, compared by code point, exactly like subword-nmt's max((count, pair)).
// Applying merges to a word repeatedly picks the pair with the earliest merge (lowest rank)
// and merges all its non-overlapping occurrences left to right, until no pair has a rank.
// Output marks every subword except a word's last with "@@": "lowest" -> "low@@ est".
// Removing every "@@ " gives back the tokenized text (see remove_bpe).
//
// Codes file (subword-nmt 0.2): first line "#version: 0.2", then one merge per line, "left right",
// in rank order, e.g. "e s</w>". Joint BPE for two languages = learn on the words of both.
//
// Not here: the vocabulary (text/dictionary.h), BPE dropout, glossaries.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace payless {

inline constexpr const char* kEndOfWord = "</w>";

// word -> number of occurrences.
using WordCounts = std::unordered_map<std::string, int64_t>;

// Adds the words of space-separated tokenized lines (as made by tokenize_line) to counts.
// Call it once per file to learn joint BPE over several files.
void count_words(const std::vector<std::string>& tokenized_lines, WordCounts& counts);

struct BpeCodes {
  std::vector<std::pair<std::string, std::string>> merges;  // rank order: merges[0] first

  // Reads a subword-nmt 0.2 codes file. Errors name the file and line: missing or other
  // "#version:" header, a line that is not two space-separated symbols.
  static BpeCodes load(const std::string& path);
  void save(const std::string& path) const;
};

// Learns up to num_merges merges; stops early when the best pair occurs fewer than
// min_frequency times (subword-nmt's default is 2). Deterministic. Cost: a pair-count index
// that is updated only for the words that contain the merged pair (10k merges on the 4.6 MB
// English Bible take 0.1 s after counting its words, 0.2 s).
BpeCodes learn_bpe(const WordCounts& counts, int64_t num_merges, int64_t min_frequency = 2);

// Applies codes. Segmentations are cached per word, so a corpus costs one segmentation per
// distinct word. Not thread-safe (the cache); use one Bpe per thread.
class Bpe {
 public:
  explicit Bpe(BpeCodes codes);

  // The subwords of one word, without "@@" markers: "lowest" -> {"low", "est"}.
  const std::vector<std::string>& segment(const std::string& word);

  // A space-separated tokenized line -> subwords with "@@" continuation markers.
  // Throws payless::Error for a token ending in "@@" (removing "@@ " could not restore it).
  std::string apply_line(const std::string& tokenized_line);

  // apply_line on every line; errors read "<name>:<line>: ...".
  std::vector<std::string> apply_lines(const std::vector<std::string>& tokenized_lines,
                                       const std::string& name);

  const BpeCodes& codes() const { return codes_; }

 private:
  BpeCodes codes_;
  std::unordered_map<std::string, int> rank_;  // "left right" -> rank (first occurrence wins)
  std::unordered_map<std::string, std::vector<std::string>> cache_;
};

// Undoes BPE the way fairseq does for subword-nmt output: (line + " ") with every "@@ "
// removed, then trailing spaces dropped; a dangling "@@" at the end of a line also goes.
std::string remove_bpe(const std::string& line);

}  // namespace payless
