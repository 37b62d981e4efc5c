// A binarized corpus: every sentence as token ids, stored in one small binary file so that
// training reads it in one go instead of re-tokenizing text. Also the pipeline that builds one
// from raw text: read -> tokenize -> BPE -> ids.
//
// Sentences are stored WITHOUT the end-of-sentence id; the batchers (text/batching.h) add it
// where fairseq's conventions put it.
//
// File format (all integers little-endian):
//   offset  size      field
//   0       8         magic "PLCORPUS"
//   8       4         format version, uint32 = 1
//   12      4         reserved, 0
//   16      8         N, number of sentences, uint64
//   24      8         M, number of tokens, uint64
//   32      8         V, vocabulary size: every id is in [0, V), uint64
//   40      8         checksum, uint64: FNV-1a 64 over all bytes from offset 48 to the end
//   48      8 (N+1)   sentence offsets, uint64: sentence i is tokens[off[i], off[i+1]);
//                     off[0] = 0, non-decreasing, off[N] = M
//   ...     4 M       token ids, int32
// load() checks all of it (size against N and M, magic, version, checksum, offsets, ids) and
// names the file in every error. N = 0 is an error: there is nothing to train or test on.
//
// Not here: batching (text/batching.h), the vocabulary (text/dictionary.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace payless {

class Bpe;
class Dictionary;

class Corpus {
 public:
  // name: where the corpus comes from (its file), used in error messages.
  explicit Corpus(std::string name = "<corpus>", int64_t vocab_size = 0);

  void add_sentence(const std::vector<int32_t>& ids);  // ids without </s>

  int64_t num_sentences() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t vocab_size() const { return vocab_size_; }
  const std::string& name() const { return name_; }

  // Sentence i as a pointer into the token array and its length (ids without </s>).
  const int32_t* sentence(int64_t i) const { return tokens_.data() + offsets_[i]; }
  int64_t sentence_length(int64_t i) const { return offsets_[i + 1] - offsets_[i]; }
  std::vector<int32_t> sentence_ids(int64_t i) const;

  // Writes atomically (temporary file, then rename). Throws for an empty corpus.
  void save(const std::string& path) const;
  static Corpus load(const std::string& path);

 private:
  std::string name_;
  int64_t vocab_size_;
  std::vector<int64_t> offsets_{0};  // (N + 1)
  std::vector<int32_t> tokens_;      // (M)
};

struct BinarizeStats {
  int64_t sentences = 0;
  int64_t tokens = 0;   // without </s>
  int64_t unknown = 0;  // tokens that became <unk>
};

// Raw text file (plain or gzipped) -> tokenized lines -> BPE subword lines (when bpe is not
// null). Errors name the file and line. This is the text that dictionaries are built from.
std::vector<std::string> prepare_text_file(const std::string& path, Bpe* bpe);

// Subword lines -> ids. name is used for the corpus and errors; an empty list of lines is an
// error naming it. stats, if given, receives the counts (unknown words are worth reporting).
Corpus binarize_lines(const std::vector<std::string>& lines, const Dictionary& dict,
                      const std::string& name, BinarizeStats* stats = nullptr);

// prepare_text_file + binarize_lines.
Corpus binarize_text_file(const std::string& path, Bpe* bpe, const Dictionary& dict,
                          BinarizeStats* stats = nullptr);

}  // namespace payless
