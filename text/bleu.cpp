// BLEU as sacreBLEU 2.6.0 computes it by default; see text/bleu.h for the API and
// /work/shared/bleu.md for the definition that each step below follows (section numbers refer to it).
// Not here: detokenization or decoding (models/, apps/) and the `payless score` command (apps/).
//
// Everything works on UTF-8 bytes. That is safe because every character 13a treats specially is
// ASCII, and a UTF-8 multi-byte sequence never contains an ASCII byte; only whitespace needs
// whole code points (Python's str.split() also splits on NBSP, U+2000..U+200A, ...).
#include "text/bleu.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "core/error.h"

namespace payless {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

// Byte length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is malformed.
// Same rules as Python's strict decoder: no overlong forms, no surrogates, nothing past U+10FFFF.
size_t utf8_sequence_length(const std::string& s, size_t i) {
  auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  auto continuation = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
  const unsigned b0 = byte(i), b1 = byte(i + 1);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return continuation(i + 1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const bool second_ok = b0 == 0xE0   ? (b1 >= 0xA0 && b1 <= 0xBF)   // overlong below U+0800
                           : b0 == 0xED ? (b1 >= 0x80 && b1 <= 0x9F)   // surrogates D800..DFFF
                                        : continuation(i + 1);
    return second_ok && continuation(i + 2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const bool second_ok = b0 == 0xF0   ? (b1 >= 0x90 && b1 <= 0xBF)   // overlong below U+10000
                           : b0 == 0xF4 ? (b1 >= 0x80 && b1 <= 0x8F)   // past U+10FFFF
                                        : continuation(i + 1);
    return second_ok && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

// Byte offset of the first malformed sequence, or std::string::npos if `s` is valid UTF-8.
size_t first_invalid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string::npos;
}

// The code point at s[i]; sets `len` to its byte length. A malformed byte (only possible when
// tokenize_13a is called directly on unchecked text) counts as one non-whitespace character.
char32_t decode_at(const std::string& s, size_t i, size_t& len) {
  len = utf8_sequence_length(s, i);
  const unsigned char b0 = static_cast<unsigned char>(s[i]);
  if (len == 0) {
    len = 1;
    return 0xFFFD;
  }
  if (len == 1) return b0;
  static const unsigned char kLeadMask[5] = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t cp = b0 & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

// Exactly the characters Python's str.split() / str.rstrip() treat as whitespace (bleu.md 2.8).
// U+200B ZERO WIDTH SPACE is deliberately absent: Python keeps it inside tokens.
bool is_python_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Python's s.rstrip().
std::string rstrip_whitespace(const std::string& s) {
  size_t keep = 0;  // end of the last non-whitespace character seen
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    if (!is_python_whitespace(decode_at(s, i, len))) keep = i + len;
  }
  return s.substr(0, keep);
}

// Python's s.split(): pieces between whitespace runs, no empty pieces.
std::vector<std::string> split_whitespace(const std::string& s) {
  std::vector<std::string> pieces;
  std::string current;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    if (is_python_whitespace(decode_at(s, i, len))) {
      if (!current.empty()) pieces.push_back(std::move(current));
      current.clear();
    } else {
      current.append(s, i, len);
    }
  }
  if (!current.empty()) pieces.push_back(std::move(current));
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// The 13a tokenizer (bleu.md section 2)

// Python's s.replace(from, to): one left-to-right pass, replaced text is not scanned again.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t start = 0;
  for (size_t hit; (hit = s.find(from, start)) != std::string::npos; start = hit + from.size()) {
    out.append(s, start, hit - start);
    out += to;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_period_or_comma(char c) { return c == '.' || c == ','; }

// Step 4's set, the regex class [\{-\~\[-\` -\&\(-\+\:-\@\/] spelled out.
// Not included: ' , - . digits letters, and all non-ASCII.
// (The class also holds the space, which spacing out would not change.)
bool is_13a_symbol(char c) {
  return c != '\0' && std::strchr("!\"#$%&()*+/:;<=>?@[\\]^_`{|}~", c) != nullptr;
}

// Steps 5-7 are each a regex `(A)(B)` replaced by "\1 \2 " (pad_left false) or " \1 \2" (pad_left
// true). re.sub takes the leftmost match and resumes right after it, so matches never overlap:
// in step 5, "a.,." matches "a." and then ",." (never ".,"), giving "a . , . ". This loop scans
// the same way.
template <typename FirstPred, typename SecondPred>
std::string space_out_pairs(const std::string& s, FirstPred first, SecondPred second, bool pad_left) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      if (pad_left) out += ' ';
      out += s[i];
      out += ' ';
      out += s[i + 1];
      if (!pad_left) out += ' ';
      i += 2;
    } else {
      out += s[i];
      i += 1;
    }
  }
  return out;
}

std::vector<std::string> tokens_13a(const std::string& line) {
  // 1. Markup sacreBLEU removes; "-\n" and "\n" can only occur when called on raw strings.
  std::string s = replace_all(line, "<skipped>", "");
  s = replace_all(s, "-\n", "");
  s = replace_all(s, "\n", " ");
  // 2. Four HTML entities, in this order (so "&amp;lt;" ends as "<").
  if (s.find('&') != std::string::npos) {
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
  }
  // 3 + 4. Pad the line, then every symbol: "$3" -> " $ 3".
  std::string padded = " ";
  for (char c : s) {
    if (is_13a_symbol(c)) {
      padded += ' ';
      padded += c;
      padded += ' ';
    } else {
      padded += c;
    }
  }
  padded += ' ';
  auto not_digit = [](char c) { return !is_digit(c); };
  // 5. A period/comma after a non-digit: "end." -> "end . ", but "3.50" untouched.
  s = space_out_pairs(padded, not_digit, is_period_or_comma, /*pad_left=*/false);
  // 6. A period/comma before a non-digit: "3., x" -> "3 . , x" (the padding space is a non-digit).
  s = space_out_pairs(s, is_period_or_comma, not_digit, /*pad_left=*/true);
  // 7. A hyphen after a digit: "10-20" -> "10 - 20", but "Beth-lehem" untouched.
  s = space_out_pairs(s, is_digit, [](char c) { return c == '-'; }, /*pad_left=*/false);
  // 8. Split on (Unicode) whitespace.
  return split_whitespace(s);
}

// ---------------------------------------------------------------------------------------------
// Statistics and score

// The n tokens from `start`, joined by spaces: tokens hold no whitespace, so two different
// n-grams can never share a key.
std::string ngram_key(const std::vector<std::string>& tokens, size_t start, size_t n) {
  std::string key = tokens[start];
  for (size_t k = 1; k < n; ++k) {
    key += ' ';
    key += tokens[start + k];
  }
  return key;
}

void check_utf8(const std::string& text, const char* side, size_t line_index) {
  const size_t bad = first_invalid_utf8(text);
  if (bad != std::string::npos) {
    fail("BLEU: ", side, " line ", line_index + 1, " is not valid UTF-8 (byte ", bad + 1,
         " of the line)");
  }
}

}  // namespace

BleuStats& BleuStats::operator+=(const BleuStats& other) {
  hyp_len += other.hyp_len;
  ref_len += other.ref_len;
  for (int n = 0; n < 4; ++n) {
    correct[n] += other.correct[n];
    total[n] += other.total[n];
  }
  return *this;
}

std::string tokenize_13a(const std::string& line) {
  std::string joined;
  for (const std::string& token : tokens_13a(line)) {
    if (!joined.empty()) joined += ' ';
    joined += token;
  }
  return joined;
}

BleuStats segment_stats(const std::string& hyp, const std::string& ref) {
  // sacreBLEU strips trailing whitespace before tokenizing; only a raw "-\n" at the very end can
  // make this differ from tokenizing unstripped text.
  const std::vector<std::string> h = tokens_13a(rstrip_whitespace(hyp));
  const std::vector<std::string> r = tokens_13a(rstrip_whitespace(ref));
  BleuStats stats;
  stats.hyp_len = static_cast<int64_t>(h.size());
  stats.ref_len = static_cast<int64_t>(r.size());
  for (size_t n = 1; n <= 4; ++n) {
    if (h.size() < n) break;  // no hypothesis n-grams: correct and total stay 0
    // Clipped matches: sum over distinct hypothesis n-grams g of min(count_hyp(g), count_ref(g)).
    // Spending one reference occurrence per hypothesis occurrence counts exactly that.
    std::unordered_map<std::string, int64_t> unspent;  // reference n-gram -> occurrences left
    for (size_t i = 0; i + n <= r.size(); ++i) ++unspent[ngram_key(r, i, n)];
    int64_t correct = 0;
    for (size_t i = 0; i + n <= h.size(); ++i) {
      auto it = unspent.find(ngram_key(h, i, n));
      if (it != unspent.end() && it->second > 0) {
        --it->second;
        ++correct;
      }
    }
    stats.correct[n - 1] = correct;
    stats.total[n - 1] = static_cast<int64_t>(h.size() - n + 1);
  }
  return stats;
}

BleuScore score_from_stats(const BleuStats& stats, bool effective_order) {
  BleuScore result;
  result.sys_len = stats.hyp_len;
  result.ref_len = stats.ref_len;
  result.correct = stats.correct;
  result.total = stats.total;
  result.effective_order = effective_order;
  result.ratio = stats.ref_len > 0 ? double(stats.hyp_len) / double(stats.ref_len) : 0.0;

  // Brevity penalty: BP = exp(1 - r/c) for a hypothesis shorter than the reference (c < r).
  if (stats.hyp_len < stats.ref_len) {
    result.bp = stats.hyp_len > 0 ? std::exp(1.0 - double(stats.ref_len) / double(stats.hyp_len))
                                  : 0.0;
  } else {
    result.bp = 1.0;
  }

  // No matching n-gram of any order: 0, with all precisions shown as 0.
  if (std::all_of(stats.correct.begin(), stats.correct.end(), [](int64_t c) { return c == 0; })) {
    result.score = 0.0;
    return result;
  }

  // p_n = 100 * correct_n / total_n. `exp` smoothing replaces a zero count by 1/2, 1/4, 1/8 ...
  // of a count (halving again at each further empty order), so one missing order never zeroes it.
  double smoothing = 1.0;
  int orders = 4;  // K: how many precisions enter the geometric mean
  for (int n = 1; n <= 4; ++n) {
    if (stats.total[n - 1] == 0) break;  // this and higher orders keep p = 0
    if (effective_order) orders = n;
    if (stats.correct[n - 1] == 0) {
      smoothing *= 2.0;
      result.precisions[n - 1] = 100.0 / (smoothing * double(stats.total[n - 1]));
    } else {
      result.precisions[n - 1] = 100.0 * double(stats.correct[n - 1]) / double(stats.total[n - 1]);
    }
  }

  // BLEU = BP * exp((log p_1 + ... + log p_K) / K), with log 0 taken as -9999999999 (as sacreBLEU
  // does) so that a missing order drives the mean to exactly 0 instead of producing NaN.
  double log_sum = 0.0;
  for (int n = 0; n < orders; ++n) {
    const double p = result.precisions[n];
    log_sum += p == 0.0 ? -9999999999.0 : std::log(p);
  }
  result.score = result.bp * std::exp(log_sum / orders);
  return result;
}

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  if (hyps.size() != refs.size()) {
    fail("corpus_bleu: ", hyps.size(), " hypothesis lines but ", refs.size(),
         " reference lines; hypothesis line i is scored against reference line i, so the "
         "counts must be equal");
  }
  // Corpus BLEU adds the counts of all lines and scores once; it is not a mean of line scores.
  BleuStats sum;
  for (size_t i = 0; i < hyps.size(); ++i) {
    check_utf8(hyps[i], "hypothesis", i);
    check_utf8(refs[i], "reference", i);
    sum += segment_stats(hyps[i], refs[i]);
  }
  return score_from_stats(sum, /*effective_order=*/false);
}

BleuScore sentence_bleu(const std::string& hyp, const std::string& ref) {
  check_utf8(hyp, "hypothesis", 0);
  check_utf8(ref, "reference", 0);
  // Effective order: a 3-token hypothesis has no 4-grams; its mean then runs over p_1..p_3
  // instead of counting p_4 = 0 (which would give every short sentence 0).
  return score_from_stats(segment_stats(hyp, ref), /*effective_order=*/true);
}

std::string BleuScore::signature() const {
  return std::string("nrefs:1|case:mixed|eff:") + (effective_order ? "yes" : "no") +
         "|tok:13a|smooth:exp|version:2.6.0";
}

std::string BleuScore::format(int decimals) const {
  if (decimals < 0 || decimals > 10) fail("BLEU: decimals must be in 0..10, got ", decimals);
  char line[256];
  std::snprintf(line, sizeof(line),
                "BLEU = %.*f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld "
                "ref_len = %lld)",
                decimals, score, precisions[0], precisions[1], precisions[2], precisions[3], bp,
                ratio, static_cast<long long>(sys_len), static_cast<long long>(ref_len));
  return line;
}

std::vector<std::string> read_text_lines(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fail("'", path, "' is a directory; expected a text file with one segment per line");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path, "' for reading: ", std::strerror(errno));
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("error while reading '", path, "'");
  if (content.size() >= 2 && static_cast<unsigned char>(content[0]) == 0x1F &&
      static_cast<unsigned char>(content[1]) == 0x8B) {
    fail("'", path, "' looks gzip-compressed; decompress it first (gzip -dc '", path,
         "' > plain.txt)");
  }

  // Lines end at '\n' only ('\r' stays and is stripped later with the other trailing whitespace);
  // a final '\n' ends the last line rather than starting an empty one.
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    const size_t bad = first_invalid_utf8(lines[i]);
    if (bad != std::string::npos) {
      fail(path, ":", i + 1, ": not valid UTF-8 (byte ", bad + 1, " of the line)");
    }
  }
  return lines;
}

BleuScore score_files(const std::string& hyp_path, const std::string& ref_path) {
  const std::vector<std::string> hyps = read_text_lines(hyp_path);
  const std::vector<std::string> refs = read_text_lines(ref_path);
  if (hyps.size() != refs.size()) {
    fail("hypothesis file '", hyp_path, "' has ", hyps.size(), " lines but reference file '",
         ref_path, "' has ", refs.size(), " lines; line i of one is scored against line i of the "
         "other, so they must have the same number of lines");
  }
  if (hyps.empty()) fail("'", hyp_path, "' and '", ref_path, "' are both empty: nothing to score");
  return corpus_bleu(hyps, refs);
}

}  // namespace payless
