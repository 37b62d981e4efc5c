// Word/punctuation tokenizer with exact detokenization. The rules are explained in tokenizer.h.
#include "text/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "text/lines.h"
#include "text/unicode.h"

namespace payless {

namespace {

constexpr char32_t kJoinCp = 0xFFED;
constexpr char32_t kSpaceCp = 0x2581;

// How a token behaves towards its neighbours when the text follows the usual conventions.
enum class Attach { kNone, kOpen, kClose, kJoin };

Attach attach_of_char(char32_t c) {
  switch (c) {
    case ',': case '.': case ':': case ';': case '?': case '!': case ')': case ']': case '}':
    case 0x201D /* ” */: case 0x2019 /* ’ */: case '\'': case 0xBB /* » */: case '%':
    case 0x2026 /* … */:
      return Attach::kClose;
    case '(': case '[': case '{': case 0x201C /* “ */: case 0x2018 /* ‘ */: case 0xBF /* ¿ */:
    case 0xA1 /* ¡ */: case 0xAB /* « */: case 0x201E /* „ */: case '$': case 0xA3 /* £ */:
    case 0x20AC /* € */: case '#':
      return Attach::kOpen;
    case '-': case 0x2013 /* – */: case 0x2014 /* — */: case '/':
      return Attach::kJoin;
    default:
      return Attach::kNone;
  }
}

// The default rule for the gap between a left and a right token (see tokenizer.h).
bool spaced_by_default(Attach left, Attach right) {
  if (right == Attach::kClose || left == Attach::kOpen) return false;
  if (left == Attach::kJoin || right == Attach::kJoin) return false;
  return true;
}

// Attach class of every token "core" (the token without markers). A core that is one
// non-word code point gets its character's class; words and anything longer get kNone.
// ASCII '"' cannot say whether it opens or closes, so its occurrences alternate.
std::vector<Attach> attach_classes(const std::vector<std::string_view>& cores) {
  std::vector<Attach> classes(cores.size(), Attach::kNone);
  bool quote_open = false;
  for (size_t i = 0; i < cores.size(); ++i) {
    const std::string_view core = cores[i];
    if (core.empty()) continue;
    char32_t cp;
    int n = 0;
    try {
      n = decode_utf8(core, 0, &cp);
    } catch (const Error&) {
      continue;  // only reachable from detokenize() on arbitrary model output
    }
    if (static_cast<size_t>(n) != core.size()) continue;
    if (cp == '"') {
      quote_open = !quote_open;
      classes[i] = quote_open ? Attach::kOpen : Attach::kClose;
    } else {
      classes[i] = attach_of_char(cp);
    }
  }
  return classes;
}

bool is_apostrophe(char32_t c) { return c == '\'' || c == 0x2019; }

}  // namespace

std::vector<std::string> tokenize(std::string_view line) {
  // Decode once; the scan below looks one code point ahead for apostrophes.
  std::vector<char32_t> cps;
  std::vector<size_t> offsets;  // byte offset of each code point, plus the end
  cps.reserve(line.size());
  offsets.reserve(line.size() + 1);
  for (size_t pos = 0; pos < line.size();) {
    char32_t cp;
    const int n = decode_utf8(line, pos, &cp);
    if (cp == kJoinCp || cp == kSpaceCp) {
      fail("byte ", pos, ": the character ", cp == kJoinCp ? "U+FFED (￭)" : "U+2581 (▁)",
           " is reserved by the tokenizer as a spacing marker and cannot appear in input text");
    }
    cps.push_back(cp);
    offsets.push_back(pos);
    pos += n;
  }
  offsets.push_back(line.size());

  std::vector<std::string_view> cores;
  std::vector<bool> is_word;
  std::vector<bool> space_after;  // space_after[k]: the text has white space after token k
  const size_t n = cps.size();
  for (size_t i = 0; i < n;) {
    if (is_space_char(cps[i])) {
      if (!space_after.empty()) space_after.back() = true;
      ++i;
      continue;
    }
    size_t j = i + 1;
    const bool word = is_word_char(cps[i]);
    if (word) {
      while (j < n && (is_word_char(cps[j]) ||
                       (is_apostrophe(cps[j]) && j + 1 < n && is_word_char(cps[j + 1])))) {
        ++j;
      }
    }
    cores.push_back(line.substr(offsets[i], offsets[j] - offsets[i]));
    is_word.push_back(word);
    space_after.push_back(false);
    i = j;
  }

  const std::vector<Attach> classes = attach_classes(cores);
  std::vector<std::string> tokens(cores.size());
  for (size_t k = 0; k < cores.size(); ++k) tokens[k] = std::string(cores[k]);
  for (size_t k = 0; k + 1 < cores.size(); ++k) {
    if (space_after[k] == spaced_by_default(classes[k], classes[k + 1])) continue;
    const std::string_view marker = space_after[k] ? kSpaceMarker : kJoinMarker;
    if (!is_word[k]) {
      tokens[k] += marker;
    } else {
      // Two words are always spaced (otherwise they would be one word), which is the default.
      PAYLESS_ASSERT(!is_word[k + 1]);
      tokens[k + 1].insert(0, marker);
    }
  }
  return tokens;
}

std::string tokenize_line(std::string_view line) {
  std::string out;
  for (const std::string& token : tokenize(line)) {
    if (!out.empty()) out += ' ';
    out += token;
  }
  return out;
}

std::vector<std::string> tokenize_lines(const std::vector<std::string>& lines,
                                        const std::string& name) {
  std::vector<std::string> out;
  out.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      out.push_back(tokenize_line(lines[i]));
    } catch (const Error& e) {
      fail(name, ":", i + 1, ": ", e.what());
    }
  }
  return out;
}

std::string detokenize(const std::vector<std::string>& tokens) {
  // Split every token into (marker before, core, marker after). A bare marker token acts on
  // the gap where it stands, as if it were attached to the token before it.
  constexpr int kNoMark = 0, kSpace = 1, kJoin = 2;  // kJoin > kSpace: "￭ wins"
  const auto mark_of = [](std::string_view s) -> int {
    return s == kJoinMarker ? kJoin : s == kSpaceMarker ? kSpace : kNoMark;
  };
  const size_t m = kJoinMarker.size();  // both markers are 3 bytes in UTF-8
  static_assert(kJoinMarker.size() == kSpaceMarker.size(), "markers differ in length");

  std::vector<std::string_view> cores;
  std::vector<int> gap_mark;  // gap_mark[k]: strongest marker seen for the gap after core k
  for (const std::string& token : tokens) {
    std::string_view core = token;
    if (mark_of(core) != kNoMark) {  // bare marker
      if (!cores.empty()) gap_mark.back() = std::max(gap_mark.back(), mark_of(core));
      continue;
    }
    int before = kNoMark, after = kNoMark;
    if (core.size() > m && mark_of(core.substr(0, m)) != kNoMark) {
      before = mark_of(core.substr(0, m));
      core.remove_prefix(m);
    }
    if (core.size() > m && mark_of(core.substr(core.size() - m)) != kNoMark) {
      after = mark_of(core.substr(core.size() - m));
      core.remove_suffix(m);
    }
    if (core.empty()) continue;
    if (!cores.empty()) gap_mark.back() = std::max(gap_mark.back(), before);
    cores.push_back(core);
    gap_mark.push_back(after);
  }

  const std::vector<Attach> classes = attach_classes(cores);
  std::string out;
  for (size_t k = 0; k < cores.size(); ++k) {
    if (k > 0) {
      const int mark = gap_mark[k - 1];
      const bool spaced = mark == kJoin    ? false
                          : mark == kSpace ? true
                                           : spaced_by_default(classes[k - 1], classes[k]);
      if (spaced) out += ' ';
    }
    out += cores[k];
  }
  return out;
}

std::string detokenize_line(const std::string& tokenized_line) {
  return detokenize(split_spaces(tokenized_line));
}

}  // namespace payless
