// Reading and writing text files as lists of lines: the one place in text/ that touches files
// of plain text. Gzipped files (.gz, recognised by their magic bytes, not their name) are read
// through the system's `gzip -dc`, since the shipped corpora are gzipped and payless links no
// zlib. Not a streaming reader: the corpora fit in memory many times over.
#pragma once

#include <string>
#include <vector>

namespace payless {

// All lines of a file, without their '\n' (and without a '\r' before it, so CRLF files read the
// same). A byte-order mark at the start is dropped. A final line without '\n' still counts; an
// empty file gives no lines. Throws payless::Error naming the file when it cannot be read.
std::vector<std::string> read_lines(const std::string& path);

// Writes each line followed by '\n'. Throws payless::Error naming the file on failure.
void write_lines(const std::string& path, const std::vector<std::string>& lines);

// Splits on runs of ASCII spaces (the separator of tokenized text, BPE output and dict.txt),
// dropping empty pieces: "a  b " -> {"a", "b"}.
std::vector<std::string> split_spaces(const std::string& line);

}  // namespace payless
