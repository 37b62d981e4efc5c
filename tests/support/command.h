// Running a program from a test: the CLI's error paths, the checkpoint reader script, mpirun.
#pragma once

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

namespace payless::testing {

struct CommandResult {
  int status;          // exit status; -1 when killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs a shell command under `timeout`, so that a hang fails the test instead of blocking it
// (timeout exits 124 then).
inline CommandResult run_command(const std::string& command, int timeout_seconds = 120) {
  const std::string line =
      "timeout " + std::to_string(timeout_seconds) + " " + command + " 2>&1";
  FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace payless::testing
