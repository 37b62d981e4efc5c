// UTF-8 decoding and the two character classes the tokenizer needs (word characters, spaces).
// Not a Unicode library: no normalization, no case mapping, no grapheme clusters. The tokenizer
// (text/tokenizer.h) is the only user; the class table is generated from the Unicode data
// (see unicode.cpp for the generator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace payless {

// Decodes the code point that starts at text[pos] and returns the number of bytes it takes
// (1..4). Strict UTF-8 (RFC 3629): overlong forms, surrogates (U+D800..U+DFFF), values above
// U+10FFFF, stray continuation bytes and cut-off sequences throw payless::Error naming the byte
// offset and the bytes found. The caller adds the file name and line number.
int decode_utf8(std::string_view text, size_t pos, char32_t* code_point);

// Appends the UTF-8 encoding of a valid code point.
void append_utf8(std::string& out, char32_t code_point);

// Throws payless::Error (byte offset named) unless the whole text is valid UTF-8.
void check_utf8(std::string_view text);

// Number of code points in valid UTF-8 text.
size_t utf8_length(std::string_view text);

// Letters, combining marks and numbers: Unicode general categories L*, M* and N*. Marks are
// included so that decomposed text ("e" + U+0301) stays inside its word.
bool is_word_char(char32_t code_point);

// The Unicode White_Space property (space, tab, newline, no-break space, ideographic space, ...).
bool is_space_char(char32_t code_point);

}  // namespace payless
