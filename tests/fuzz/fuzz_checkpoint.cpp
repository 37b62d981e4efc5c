// libFuzzer target for the checkpoint reader (core/serialize.h): any bytes must either parse into
// a checkpoint or throw payless::Error -- never crash, read out of bounds, hang or leak. What does
// parse must survive a round trip through our writer unchanged. Built and run by scripts/fuzz.sh
// (with ASan and UBSan), not by CMake; seeds in corpus/fuzz_checkpoint/.
//
// fuzz-sources: core/serialize.cpp core/tensor.cpp core/autograd.cpp
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/serialize.h"

namespace {

void check(const uint8_t* data, size_t size) {
  payless::Checkpoint c;
  try {
    c = payless::parse_checkpoint(data, size, "fuzz-input");
  } catch (const payless::Error&) {
    return;  // a refused input: what the reader must do with bad bytes
  }
  // Accepted: writing it again must work and read back the same names, bits and metadata. An
  // exception escaping from here is a finding (libFuzzer reports it as a crash).
  std::string again = payless::encode_checkpoint(c);
  payless::Checkpoint back =
      payless::parse_checkpoint(reinterpret_cast<const uint8_t*>(again.data()), again.size(), "again");
  if (back.metadata != c.metadata || back.tensors.size() != c.tensors.size()) std::abort();
  for (const auto& [name, tensor] : c.tensors) {
    const payless::Tensor* other = back.find(name);
    if (!other || other->shape() != tensor.shape() ||
        std::memcmp(other->data(), tensor.data(), sizeof(float) * tensor.numel()) != 0)
      std::abort();
  }
}

// Nearly every mutation of the data (or of the offsets) breaks the checksum, which would stop
// the fuzzer at the last check. So each input is also tried with its checksum made right: the
// 16 characters after "data_checksum":" in the header become the data section's true checksum.
bool fix_checksum(std::string& file) {
  if (file.size() < 8) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(file[i]);
  if (n > file.size() - 8) return false;
  const std::string key = "\"data_checksum\":\"";
  size_t at = file.find(key, 8);
  if (at == std::string::npos || at + key.size() + 16 > 8 + n) return false;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(payless::checksum64(
                                                file.data() + 8 + n, file.size() - 8 - n)));
  file.replace(at + key.size(), 16, hex);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  std::string fixed(reinterpret_cast<const char*>(data), size);
  if (fix_checksum(fixed)) check(reinterpret_cast<const uint8_t*>(fixed.data()), fixed.size());
  return 0;
}
