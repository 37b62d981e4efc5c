// Line-based text file reading and writing. See lines.h.
#include "text/lines.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace payless {

namespace {

// Quotes a path for /bin/sh: inside single quotes only the single quote itself is special.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_gzip(const std::string& path) {
  const std::string command = "gzip -dc -- " + shell_quote(path) + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) fail(path, ": cannot start `gzip -dc` to decompress it");
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) data.append(buf, n);
  const int status = pclose(pipe);
  if (status != 0) {
    fail(path, ": `gzip -dc` failed (exit status ", status,
         "): the file looks gzipped but is damaged or truncated, or gzip is not installed");
  }
  return data;
}

}  // namespace

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail(path, ": read error");
  std::string data = buffer.str();
  if (data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1F &&
      static_cast<unsigned char>(data[1]) == 0x8B) {
    data = read_gzip(path);
  }
  size_t start = 0;
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) start = 3;
  std::vector<std::string> lines;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    const size_t next = (end == std::string::npos) ? data.size() : end + 1;
    if (end == std::string::npos) end = data.size();
    if (end > start && data[end - 1] == '\r') --end;
    lines.emplace_back(data, start, end - start);
    start = next;
  }
  return lines;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path, ": cannot open for writing");
  for (const std::string& line : lines) out << line << '\n';
  out.flush();
  if (!out) fail(path, ": write error (disk full?)");
}

std::vector<std::string> split_spaces(const std::string& line) {
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) pieces.emplace_back(line, start, i - start);
  }
  return pieces;
}

}  // namespace payless
