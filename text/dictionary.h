// The vocabulary: token <-> id, in fairseq's dict.txt format, so dictionaries (and the models
// built on them) can be exchanged with fairseq.
//
// Ids 0..3 are the specials <s> (begin, unused by our models), <pad>, </s> (end of sentence)
// and <unk>; they are not written to dict.txt. Every other line of dict.txt is "token count",
// in id order starting at 4. Building follows fairseq's Dictionary.finalize: tokens sorted by
// count, most frequent first, ties in code point order of the token; tokens with a count below
// a threshold dropped; at most nwords entries (specials included); then "madeupword0000",
// "madeupword0001", ... (count 0) appended until the size is a multiple of padding_factor
// (fairseq uses 8 so that embedding matrices have friendly shapes).
//
// Not here: splitting text into tokens (text/tokenizer.h, text/bpe.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace payless {

class Dictionary {
 public:
  static constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3;
  static constexpr int32_t kNumSpecial = 4;

  // A dictionary holding only the four specials (count 1 each, as fairseq does).
  Dictionary();

  // Adds count occurrences of token (adding the token if new) and returns its id.
  int32_t add(const std::string& token, int64_t count = 1);
  // Counts every space-separated token of every line (call once per file; joint dictionaries
  // count the files of both languages).
  void add_lines(const std::vector<std::string>& lines);

  // Sorts and trims as described above. threshold <= 0 keeps every token, nwords <= 0 keeps
  // all, padding_factor <= 1 adds no madeupwords.
  void finalize(int64_t threshold = 0, int64_t nwords = -1, int64_t padding_factor = 8);

  // Reads dict.txt. Errors name the file and line: a line that is not "token count" (count a
  // non-negative integer; fairseq's optional trailing flag "#fairseq:overwrite" is accepted), or
  // a token listed twice without that flag.
  static Dictionary load(const std::string& path);
  void save(const std::string& path) const;

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  bool contains(std::string_view token) const;
  int32_t index(std::string_view token) const;  // kUnk when absent
  const std::string& token(int32_t id) const;   // throws payless::Error when out of range
  int64_t count(int32_t id) const;

  // Space-separated tokens -> ids (+ kEos when append_eos). A token not in the dictionary maps
  // to kUnk and, if num_unknown is given, increments it (the literal "<unk>" is not counted).
  std::vector<int32_t> encode(const std::string& line, bool append_eos = true,
                              int64_t* num_unknown = nullptr) const;

  // Ids -> space-separated tokens. <pad> is always dropped; <s> and </s> too unless
  // keep_specials. Throws payless::Error for an id outside [0, size()).
  std::string decode(const std::vector<int32_t>& ids, bool keep_specials = false) const;

 private:
  std::vector<std::string> tokens_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace payless
