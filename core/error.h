// Errors in payless come in two kinds, and this file holds both.
//  - payless::Error: the user gave us something wrong (a file, a config key, a tensor shape). The
//    message names the file/line/key/tensor and what was expected; the CLI prints it and exits 1.
//  - PAYLESS_ASSERT: an internal invariant. Failing one is a bug in payless, so it aborts with the
//    source location instead of throwing something a caller might swallow.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

namespace payless {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Builds a message from any streamable pieces: fail("layer_norm: ", x.describe(), " ...").
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

}  // namespace payless

#define PAYLESS_ASSERT(cond)                                                                 \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "payless internal error: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
