// BLEU exactly as sacreBLEU 2.6.0 computes it by default: 13a tokenization, mixed case, one
// reference, n-gram orders 1..4, brevity penalty, `exp` smoothing. corpus_bleu() is the number
// papers report (`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`); sentence_bleu()
// is the per-line variant (effective order on, `eff:yes`).
// Not here: other tokenizers, lowercasing, other smoothing methods, several references, chrF/TER.
// The full definition, step by step, is /work/shared/bleu.md; the `payless score` command in
// apps/ calls score_files().
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace payless {

// The 10 integers one segment contributes; a corpus score adds them over all segments first.
struct BleuStats {
  int64_t hyp_len = 0;                 // hypothesis tokens
  int64_t ref_len = 0;                 // reference tokens
  std::array<int64_t, 4> correct{};    // correct[n-1]: clipped matching n-grams
  std::array<int64_t, 4> total{};      // total[n-1]: hypothesis n-grams = max(0, hyp_len - n + 1)

  BleuStats& operator+=(const BleuStats& other);
};

struct BleuScore {
  double score = 0;                       // 0..100
  std::array<double, 4> precisions{};     // p[n-1] in percent, after smoothing (0 past a `break`)
  double bp = 1;                          // brevity penalty
  double ratio = 0;                       // sys_len / ref_len (0 when ref_len is 0)
  int64_t sys_len = 0, ref_len = 0;
  std::array<int64_t, 4> correct{}, total{};
  bool effective_order = false;           // true for sentence_bleu

  // sacreBLEU's signature for the configuration this score reproduces, e.g.
  // "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0". Print it under format() so the
  // number can be compared with published ones.
  std::string signature() const;
  // sacreBLEU's text line: "BLEU = 39.89 68.5/46.7/33.2/23.8 (BP = 1.000 ratio = 1.041
  // hyp_len = 33170 ref_len = 31857)". `decimals` applies to the score only.
  std::string format(int decimals = 2) const;
};

// The 13a tokenizer (mteval-v13a.pl, as sacreBLEU runs it) on one UTF-8 line; returns the tokens
// joined by single spaces. "Hello, world! $3.50" -> "Hello , world ! $ 3.50".
std::string tokenize_13a(const std::string& line);

// Tokenizes both sides (trailing whitespace removed first) and counts the 10 integers.
BleuStats segment_stats(const std::string& hyp, const std::string& ref);

// The score formula of bleu.md section 5 on summed statistics.
BleuScore score_from_stats(const BleuStats& stats, bool effective_order);

// Line i of hyps is scored against line i of refs. Throws payless::Error if the counts differ or
// a line is not valid UTF-8. Zero lines score 0.
BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);

// One segment on its own, effective order on (as sacreBLEU's sentence_bleu).
BleuScore sentence_bleu(const std::string& hyp, const std::string& ref);

// Reads a UTF-8 text file as sacreBLEU does: lines split on '\n' only, a final newline does not
// start another line. Throws payless::Error naming the path if the file cannot be read, is a
// directory, looks gzip-compressed, or holds invalid UTF-8 (with the line number).
std::vector<std::string> read_text_lines(const std::string& path);

// Corpus BLEU of a hypothesis file against a reference file (what `payless score` prints).
// Throws payless::Error naming both files and both counts if their line counts differ, and if
// both are empty.
BleuScore score_files(const std::string& hyp_path, const std::string& ref_path);

}  // namespace payless
