// Binarized corpus files and the text -> ids pipeline. The format is documented in corpus.h.
#include "text/corpus.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/bpe.h"
#include "text/dictionary.h"
#include "text/lines.h"
#include "text/tokenizer.h"

namespace payless {

namespace {

constexpr char kMagic[8] = {'P', 'L', 'C', 'O', 'R', 'P', 'U', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 48;

// Explicit little-endian encoding, so files move between machines unchanged.
void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
}
uint64_t get_le(const std::string& in, size_t pos, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[pos + i])) << (8 * i);
  }
  return value;
}

uint64_t fnv1a64(const char* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

Corpus::Corpus(std::string name, int64_t vocab_size)
    : name_(std::move(name)), vocab_size_(vocab_size) {}

void Corpus::add_sentence(const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id < 0) fail(name_, ": sentence ", num_sentences(), " has a negative token id ", id);
    if (id >= vocab_size_) vocab_size_ = static_cast<int64_t>(id) + 1;
  }
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  offsets_.push_back(static_cast<int64_t>(tokens_.size()));
}

std::vector<int32_t> Corpus::sentence_ids(int64_t i) const {
  PAYLESS_ASSERT(i >= 0 && i < num_sentences());
  return std::vector<int32_t>(sentence(i), sentence(i) + sentence_length(i));
}

void Corpus::save(const std::string& path) const {
  if (num_sentences() == 0) fail(path, ": refusing to write an empty corpus (no sentences)");
  std::string body;
  body.reserve(8 * offsets_.size() + 4 * tokens_.size());
  for (int64_t offset : offsets_) put_le(body, static_cast<uint64_t>(offset), 8);
  for (int32_t id : tokens_) put_le(body, static_cast<uint32_t>(id), 4);

  std::string header(kMagic, sizeof kMagic);
  put_le(header, kVersion, 4);
  put_le(header, 0, 4);
  put_le(header, static_cast<uint64_t>(num_sentences()), 8);
  put_le(header, static_cast<uint64_t>(num_tokens()), 8);
  put_le(header, static_cast<uint64_t>(vocab_size_), 8);
  put_le(header, fnv1a64(body.data(), body.size()), 8);
  PAYLESS_ASSERT(header.size() == kHeaderBytes);

  // A crash half-way must not leave a truncated file under the final name.
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail(temp, ": cannot open for writing");
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    if (!out) fail(temp, ": write error (disk full?)");
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    fail(path, ": cannot rename ", temp, " to it");
  }
}

Corpus Corpus::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open binarized corpus for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();

  if (data.size() < kHeaderBytes) {
    fail(path, ": truncated binarized corpus: ", data.size(), " bytes, but the header alone is ",
         kHeaderBytes, " bytes");
  }
  if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) {
    fail(path, ": not a payless binarized corpus (the file does not start with 'PLCORPUS')");
  }
  const uint64_t version = get_le(data, 8, 4);
  if (version != kVersion) {
    fail(path, ": binarized corpus format version ", version, ", this build reads version ",
         kVersion);
  }
  const uint64_t n = get_le(data, 16, 8), m = get_le(data, 24, 8), v = get_le(data, 32, 8);
  const uint64_t checksum = get_le(data, 40, 8);
  // Bounds before arithmetic, so a corrupt header cannot overflow the size computation.
  constexpr uint64_t kLimit = uint64_t{1} << 40;
  if (n >= kLimit || m >= kLimit || v > uint64_t{1} << 31) {
    fail(path, ": corrupt header: ", n, " sentences, ", m, " tokens, vocabulary ", v);
  }
  const uint64_t expected = kHeaderBytes + 8 * (n + 1) + 4 * m;
  if (data.size() < expected) {
    fail(path, ": truncated binarized corpus: the header announces ", n, " sentences and ", m,
         " tokens (", expected, " bytes) but the file has ", data.size(), " bytes");
  }
  if (data.size() > expected) {
    fail(path, ": corrupt binarized corpus: ", data.size() - expected,
         " bytes after the announced end at byte ", expected);
  }
  if (fnv1a64(data.data() + kHeaderBytes, data.size() - kHeaderBytes) != checksum) {
    fail(path, ": corrupt binarized corpus: checksum mismatch (the data changed after writing)");
  }
  if (n == 0) fail(path, ": empty corpus (0 sentences)");

  Corpus corpus(path, static_cast<int64_t>(v));
  corpus.offsets_.resize(n + 1);
  for (uint64_t i = 0; i <= n; ++i) {
    const uint64_t offset = get_le(data, kHeaderBytes + 8 * i, 8);
    const uint64_t previous = i == 0 ? 0 : static_cast<uint64_t>(corpus.offsets_[i - 1]);
    if (offset < previous || offset > m || (i == 0 && offset != 0) || (i == n && offset != m)) {
      fail(path, ": corrupt binarized corpus: offset ", i, " is ", offset);
    }
    corpus.offsets_[i] = static_cast<int64_t>(offset);
  }
  corpus.tokens_.resize(m);
  const size_t base = kHeaderBytes + 8 * (n + 1);
  for (uint64_t i = 0; i < m; ++i) {
    const uint64_t id = get_le(data, base + 4 * i, 4);
    if (id >= v) {
      fail(path, ": corrupt binarized corpus: token ", i, " has id ", id,
           " outside the vocabulary of ", v);
    }
    corpus.tokens_[i] = static_cast<int32_t>(id);
  }
  return corpus;
}

std::vector<std::string> prepare_text_file(const std::string& path, Bpe* bpe) {
  std::vector<std::string> lines = tokenize_lines(read_lines(path), path);
  if (bpe) lines = bpe->apply_lines(lines, path);
  return lines;
}

Corpus binarize_lines(const std::vector<std::string>& lines, const Dictionary& dict,
                      const std::string& name, BinarizeStats* stats) {
  if (lines.empty()) fail(name, ": empty corpus (no lines)");
  Corpus corpus(name, dict.size());
  BinarizeStats counts;
  for (const std::string& line : lines) {
    const std::vector<int32_t> ids = dict.encode(line, /*append_eos=*/false, &counts.unknown);
    corpus.add_sentence(ids);
    counts.tokens += static_cast<int64_t>(ids.size());
  }
  counts.sentences = corpus.num_sentences();
  if (stats) *stats = counts;
  return corpus;
}

Corpus binarize_text_file(const std::string& path, Bpe* bpe, const Dictionary& dict,
                          BinarizeStats* stats) {
  return binarize_lines(prepare_text_file(path, bpe), dict, path, stats);
}

}  // namespace payless
