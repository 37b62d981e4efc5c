// Checkpoints: named float32 tensors plus string metadata, in the safetensors layout, so PyTorch
// (safetensors.torch.load_file) and plain numpy (scripts/read_checkpoint.py) read our files.
//
// The file, byte by byte:
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  JSON header, padded with spaces so that 8 + N is a multiple of 8 (aligned data):
//              {"__metadata__": {"format": "payless-checkpoint-1", "data_checksum": "<16 hex>", ...},
//               "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//               ...}
//   [rest]     the data section: raw little-endian float32 values, row-major. data_offsets count
//              bytes from the start of this section. Tensors are stored back to back, sorted by
//              name, with no gaps, and the section ends where the last tensor ends.
//
// data_checksum is checksum64() of the whole data section (defined below, reproduced in
// scripts/read_checkpoint.py). Reading checks every field, every offset and the checksum, and
// every error names the file (and the tensor or key): a checkpoint from a crashed run, another
// program or a disk fault is refused, never half-read.
//
// What this is not: it does not know what a model or optimizer is. Callers put their config,
// step, data position, RNG state and optimizer hyper-parameters into `metadata` as strings (JSON
// strings where structured), the optimizer's moments in as tensors named "optimizer.*"
// (optim/optimizer.h), and read them back themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace payless {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The value of metadata "format" in every checkpoint we write and accept.
constexpr const char* kCheckpointFormat = "payless-checkpoint-1";
// A header larger than this is refused before any of it is read (ours are a few hundred KB).
constexpr uint64_t kMaxCheckpointHeaderBytes = uint64_t(100) << 20;

struct Checkpoint {
  NamedTensors tensors;  // names unique; loaded files list them in file order (sorted by name)
  std::map<std::string, std::string> metadata;
  std::string source;  // the file it was loaded from; errors name it ("" if built in memory)

  // The tensor called `name`, or nullptr.
  const Tensor* find(const std::string& name) const;
  // metadata[key], or an Error naming the file and the missing key.
  const std::string& metadata_value(const std::string& key) const;
};

// Writes atomically: the bytes go to "<path>.tmp.<pid>" in the same folder, which is flushed and
// fsync'ed, then renamed over `path`, then the folder is fsync'ed. A crash (or kill -9) at any
// moment leaves either the previous file or the new one at `path`, whole. A crash can leave the
// temp file behind; nothing reads it. Adds "format" and "data_checksum" to the metadata (the
// caller must not set them).
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads and validates a whole file (see the top of this file); errors name `path`.
Checkpoint load_checkpoint(const std::string& path);

// The same checks on a file image in memory; errors name `name_for_errors`. For the fuzzer and
// tests; load_checkpoint reads straight from the file without holding a second copy.
Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& name_for_errors);

// The exact bytes save_checkpoint would write (for tests that craft damaged files).
std::string encode_checkpoint(const Checkpoint& checkpoint);

// Copies the checkpoint's values into existing tensors (a model's named_parameters()). Every
// name, shape and count is checked before any value is written, so on error the model is
// unchanged. Errors: a parameter missing from the checkpoint, a checkpoint tensor that is not a
// parameter, a shape mismatch (both shapes printed); each names the file and the tensor.
// Tensors whose names start with one of `skip_prefixes` belong to someone else (the optimizer's
// state, read by Optimizer::load_state) and are ignored.
void load_parameters(const Checkpoint& checkpoint, const NamedTensors& params,
                     const std::vector<std::string>& skip_prefixes = {"optimizer."});

// checksum64: a 64-bit hash of a byte string, chosen so numpy can compute it without a loop.
// Pad the bytes with zeros to a multiple of 8 and read them as little-endian words w_0..w_{n-1};
//   h = Σ_i mix64(w_i + i · 0x9e3779b97f4a7c15)  (mod 2^64),   checksum = mix64(h ^ byte_count)
// with mix64 the SplitMix64 finaliser (core/rng.h). mix64 is a bijection, so changing any one
// word always changes the sum; adding the index makes swapped words count as a change too.
// Streaming form, for data that arrives in pieces:
class Checksum64 {
 public:
  void update(const void* bytes, size_t size);
  uint64_t finish() const;  // does not end the stream; more updates may follow

 private:
  uint64_t sum_ = 0;
  uint64_t words_ = 0;     // full words added so far
  uint64_t pending_ = 0;   // bytes of the current partial word, little-endian
  int pending_bytes_ = 0;  // 0..7
};
uint64_t checksum64(const void* bytes, size_t size);

}  // namespace payless
