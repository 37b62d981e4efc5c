// The word-level tokenizer for raw text, and its exact inverse.
//
// What is a token:
//  - a word: a maximal run of letters, combining marks and digits (Unicode L*, M*, N*, so "ñandú",
//    "Jehová" and "2015" are single words). An apostrophe (' or U+2019 ’) between two word
//    characters stays inside the word: "don't", "Yahweh’s" are one token each; a trailing one
//    ("servants’") is its own token, because it may as well be a closing quote.
//  - every other code point that is not white space is a token of its own: "¿", ",", "—", "“".
//
// How detokenization restores the text exactly: tokens are written separated by single spaces,
// and for each gap between two neighbouring tokens the detokenizer decides "space" or "no space"
// from a few default rules, like the Moses detokenizer:
//    no space before a closing mark      , . : ; ? ! ) ] } ” ’ ' » % …
//    no space after an opening mark      ( [ { “ ‘ ¿ ¡ « „ $ £ € #
//    no space on either side of          - – — /
//    an ASCII double quote " opens on its 1st, 3rd, ... occurrence in a line, closes otherwise
//    a space everywhere else (in particular between two words)
// Where the text disagrees with the rule (rare: 168 of 2.5 million gaps in the Bible corpora),
// the tokenizer writes a marker on the punctuation side of that gap (on the left token if it is
// punctuation, else on the right one; words never carry markers):
//    ￭ (U+FFED) "no space here"       ▁ (U+2581) "a space here"
// Examples (text -> tokens):
//    ¡Ven, Señor!      -> ¡ Ven , Señor !          (all gaps follow the rules: no markers)
//    he said—yes       -> he said — yes
//    John 3:16         -> John 3 :￭ 16              (no space after ':' here, unlike the rule)
//    a - b             -> a ▁-▁ b                   (spaces around '-', unlike the rule)
// The two marker characters are reserved (they cannot be told apart from markers), so
// input containing them is rejected.
//
// Exactness: detokenize(tokenize(s)) == s for every valid UTF-8 line s that has no leading or
// trailing white space and whose white space is single ASCII spaces (the shipped corpora; other
// white space runs come back as one space). Tested on every line of the shipped corpora.
//
// Not here: lower-casing, Unicode normalization (text is taken as it is), subwords (text/bpe.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace payless {

// The reserved markers, as UTF-8.
inline constexpr std::string_view kJoinMarker = "\xEF\xBF\xAD";   // U+FFED ￭ "no space here"
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 ▁ "a space here"

// Splits one line of raw text into tokens. Throws payless::Error for invalid UTF-8 (naming the
// byte offset) or a reserved marker character; callers reading files add file and line, as
// tokenize_lines does.
std::vector<std::string> tokenize(std::string_view line);

// tokenize() joined with single spaces: the form BPE and the dictionary read.
std::string tokenize_line(std::string_view line);

// Tokenizes every line; errors read "<name>:<line number>: invalid UTF-8 at byte ...".
// Line numbers start at 1.
std::vector<std::string> tokenize_lines(const std::vector<std::string>& lines,
                                        const std::string& name);

// Inverse of tokenize(). Never fails: it also accepts what a model writes (markers anywhere,
// a bare ￭ or ▁ token acting on the gap it stands in; if a gap has both, ￭ wins).
std::string detokenize(const std::vector<std::string>& tokens);

// detokenize() of a space-separated token line.
std::string detokenize_line(const std::string& tokenized_line);

}  // namespace payless
