// Tests for core/serialize.h: round trips, the exact bytes of the layout, one hand-made damaged
// file per check of the reader (each error must name the file and say what is wrong, and the
// file and memory readers must agree), load_parameters, atomic saving under kill -9, and the
// numpy reader script.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/serialize.h"
#include "tests/support/command.h"

#ifndef PAYLESS_SOURCE_DIR
#define PAYLESS_SOURCE_DIR "/work/main"  // the CMake build defines it; this is for direct g++ builds
#endif

using Catch::Matchers::Contains;
using namespace payless;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test case, removed with everything in it (killed writers' temp files too).
struct TempDir {
  std::string path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "payless_checkpoint_XXXXXX").string();
    REQUIRE(mkdtemp(&pattern[0]) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// A small checkpoint with every kind of tensor: 2-D, 1-D, a scalar, an empty one, and special
// float values; metadata with JSON, quotes, newlines and UTF-8. The data section is 4 · 25 = 100
// bytes, not a multiple of 8, so the checksum's zero padding is exercised.
Checkpoint sample() {
  Checkpoint c;
  std::vector<float> embed(12);
  for (int i = 0; i < 12; ++i) embed[i] = 0.5f * i;  // 0 0.5 1 ... 5.5
  c.tensors.emplace_back("decoder.embed_tokens.weight", Tensor::from_data({4, 3}, embed));
  c.tensors.emplace_back("decoder.layers.0.fc1.bias",
                         Tensor::from_data({8}, {-0.0f, 1e-42f, 3.25f, -7.0f,
                                                 std::numeric_limits<float>::infinity(),
                                                 std::numeric_limits<float>::quiet_NaN(),
                                                 std::numeric_limits<float>::max(), 1.0f / 3}));
  c.tensors.emplace_back("a_scalar", Tensor::scalar(42.0f));
  c.tensors.emplace_back("empty", Tensor::zeros({0, 3}));
  c.tensors.emplace_back("w", Tensor::from_data({2, 2}, {1, 2, 3, 4}));
  c.metadata["step"] = "12";
  c.metadata["config"] = R"({"dim": 3, "name": "tiny \"lm\""})";
  c.metadata["note"] = "line one\nline two, caf\xc3\xa9";
  return c;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

// Equal names (in any order), shapes, bit-identical values, and equal metadata.
bool same_content(const Checkpoint& a, const Checkpoint& b) {
  if (a.tensors.size() != b.tensors.size() || a.metadata != b.metadata) return false;
  for (const auto& [name, tensor] : a.tensors) {
    const Tensor* other = b.find(name);
    if (!other || !same_bits(tensor, *other)) return false;
  }
  return true;
}

// A file image from a header we write by hand (padded like ours) and a data section.
std::string craft(const std::string& header_json, const std::string& data) {
  std::string header = header_json;
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
  return out + header + data;
}

// The little-endian uint64 at the start of a file image: the header's length in bytes.
uint64_t header_length(const std::string& bytes) {
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(bytes[i]);
  return n;
}

std::string hex16(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// A header around `tensors_json` (the tensor entries, without braces) whose metadata is valid
// and whose checksum matches `data`, so only the entries can be wrong.
std::string craft_with(const std::string& tensors_json, const std::string& data) {
  std::string meta = R"("__metadata__": {"format": "payless-checkpoint-1", "data_checksum": ")" +
                     hex16(checksum64(data.data(), data.size())) + "\"}";
  return craft("{" + meta + (tensors_json.empty() ? "" : ", " + tensors_json) + "}", data);
}

std::string floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Loads `bytes` both from a file and from memory; both must fail, with the same message, which
// is returned.
std::string error_for(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("damaged.ckpt");
  write_bytes(path, bytes);
  std::string from_file = "(loaded without error)", from_memory = "(parsed without error)";
  try {
    load_checkpoint(path);
  } catch (const Error& e) {
    from_file = e.what();
  }
  try {
    parse_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
  } catch (const Error& e) {
    from_memory = e.what();
  }
  CHECK(from_file == from_memory);
  CHECK_THAT(from_file, Contains("checkpoint '" + path + "'"));
  return from_file;
}

}  // namespace

TEST_CASE("checkpoint round trip keeps names, shapes, bits and metadata", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("model.ckpt");
  Checkpoint saved = sample();
  save_checkpoint(path, saved);
  Checkpoint loaded = load_checkpoint(path);

  CHECK(same_content(saved, loaded));  // NaN, -0, a denormal and inf survive bit for bit
  CHECK(loaded.source == path);
  CHECK(loaded.metadata == saved.metadata);  // "format"/"data_checksum" belong to the file
  CHECK(loaded.find("a_scalar")->rank() == 0);
  CHECK(loaded.find("empty")->shape() == Shape({0, 3}));
  CHECK(loaded.find("missing") == nullptr);
  CHECK(loaded.metadata_value("step") == "12");
  CHECK_THROWS_WITH(loaded.metadata_value("epoch"),
                    Contains("checkpoint '" + path + "'") && Contains("no 'epoch'"));
  // Loaded tensors come in file order, which is sorted by name.
  std::vector<std::string> names;
  for (const auto& entry : loaded.tensors) names.push_back(entry.first);
  CHECK(names == std::vector<std::string>{"a_scalar", "decoder.embed_tokens.weight",
                                          "decoder.layers.0.fc1.bias", "empty", "w"});

  // The memory reader agrees, and the file is exactly encode_checkpoint's bytes.
  const std::string bytes = read_bytes(path);
  CHECK(bytes == encode_checkpoint(saved));
  Checkpoint parsed = parse_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
  CHECK(same_content(saved, parsed));

  // No temp file is left behind by a successful save.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) files += entry.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("checkpoint bytes follow the safetensors layout", "[checkpoint]") {
  Checkpoint c = sample();
  const std::string bytes = encode_checkpoint(c);
  const uint64_t n = header_length(bytes);
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);  // the data section is 8-byte aligned
  const std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  CHECK(header.find_last_not_of(' ') == header.find_last_of('}'));  // padded with spaces only

  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"]["format"] == "payless-checkpoint-1");
  CHECK(j["__metadata__"]["step"] == "12");
  const std::string data = bytes.substr(8 + n);
  CHECK(data.size() == 4 * 25);
  CHECK(j["__metadata__"]["data_checksum"] == hex16(checksum64(data.data(), data.size())));
  // Sorted by name and back to back: a_scalar [0, 4), decoder.embed_tokens.weight [4, 52), ...
  CHECK(j["a_scalar"] == nlohmann::json::parse(R"({"dtype":"F32","shape":[],"data_offsets":[0,4]})"));
  CHECK(j["decoder.embed_tokens.weight"]["shape"] == nlohmann::json::parse("[4, 3]"));
  CHECK(j["decoder.embed_tokens.weight"]["data_offsets"] == nlohmann::json::parse("[4, 52]"));
  CHECK(j["decoder.layers.0.fc1.bias"]["data_offsets"] == nlohmann::json::parse("[52, 84]"));
  CHECK(j["empty"]["data_offsets"] == nlohmann::json::parse("[84, 84]"));
  CHECK(j["w"]["data_offsets"] == nlohmann::json::parse("[84, 100]"));
  float w[4];
  std::memcpy(w, data.data() + 84, 16);  // little-endian float32, row-major
  CHECK(std::vector<float>(w, w + 4) == std::vector<float>{1, 2, 3, 4});

  // Deterministic: the order tensors are given in does not matter.
  Checkpoint reversed = c;
  std::reverse(reversed.tensors.begin(), reversed.tensors.end());
  CHECK(encode_checkpoint(reversed) == bytes);
}

TEST_CASE("checksum64 is pinned and streams in any pieces", "[checkpoint]") {
  // Values from an independent big-integer Python implementation of the formula in serialize.h.
  std::string bytes;
  for (int i = 0; i < 13; ++i) bytes += static_cast<char>(i);
  CHECK(hex16(checksum64(bytes.data(), bytes.size())) == "db6a0acbdf0d2c3d");
  CHECK(hex16(checksum64("payless", 7)) == "5e89040dc6a66e82");
  CHECK(checksum64("", 0) == 0);

  std::string big(1000, '\0');
  std::mt19937 gen(7);
  for (char& ch : big) ch = static_cast<char>(gen());
  const uint64_t whole = checksum64(big.data(), big.size());
  for (size_t piece : {1, 3, 7, 8, 9, 64, 333}) {
    Checksum64 hash;
    for (size_t at = 0; at < big.size(); at += piece)
      hash.update(big.data() + at, std::min(piece, big.size() - at));
    CHECK(hash.finish() == whole);
  }
  // One changed bit, two swapped words, and a trailing zero byte all change it.
  std::string flipped = big;
  flipped[500] ^= 1;
  CHECK(checksum64(flipped.data(), flipped.size()) != whole);
  std::string swapped = big;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 8);
  CHECK(checksum64(swapped.data(), swapped.size()) != whole);
  CHECK(checksum64(big.data(), 999) != checksum64((big.substr(0, 999) + '\0').data(), 1000));
}

TEST_CASE("damaged data or truncation is refused with the file named", "[checkpoint]") {
  TempDir dir;
  const std::string good = encode_checkpoint(sample());
  const uint64_t n = header_length(good);

  SECTION("one flipped bit anywhere in the data") {
    for (size_t at : {size_t(8 + n), size_t(8 + n + 50), good.size() - 1}) {
      std::string bad = good;
      bad[at] ^= 0x10;
      std::string message = error_for(dir, bad);
      CHECK_THAT(message, Contains("data checksum mismatch") && Contains("the file is corrupt"));
    }
  }
  SECTION("a file cut short at any point") {
    struct Cut {
      size_t size;
      const char* expected;
    };
    for (Cut cut : {Cut{0, "fewer than the 8-byte header length"},
                    Cut{5, "fewer than the 8-byte header length"},
                    Cut{8, "goes past the end of the file"},
                    Cut{size_t(8 + n / 2), "goes past the end of the file"},
                    Cut{size_t(8 + n - 1), "goes past the end of the file"},
                    Cut{size_t(8 + n), "the file is truncated"},
                    Cut{size_t(8 + n + 6), "the file is truncated"},
                    Cut{good.size() - 1, "the file is truncated"}}) {
      INFO("cut at " << cut.size << " of " << good.size());
      CHECK_THAT(error_for(dir, good.substr(0, cut.size)), Contains(cut.expected));
    }
  }
  SECTION("extra bytes after the data") {
    CHECK_THAT(error_for(dir, good + "xxxx"), Contains("extra bytes at the end"));
  }
  SECTION("a header length beyond any sane size") {
    std::string bad = good;
    for (int i = 0; i < 8; ++i) bad[i] = '\xff';
    CHECK_THAT(error_for(dir, bad), Contains("header length 18446744073709551615 is above the limit"));
    bad = good;
    bad[0] = 0, bad[1] = 0, bad[2] = 0, bad[3] = 0x10;  // 256 MB
    CHECK_THAT(error_for(dir, bad), Contains("is above the limit"));
  }
  SECTION("a header length past the end of the file") {
    std::string bad = good;
    bad[1] = static_cast<char>(static_cast<uint8_t>(bad[1]) + 1);  // n + 256
    CHECK_THAT(error_for(dir, bad), Contains("goes past the end of the file (" +
                                             std::to_string(good.size()) + " bytes)"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(load_checkpoint(dir.file("nope.ckpt")),
                      Contains(dir.file("nope.ckpt")) && Contains("cannot open"));
  }
}

TEST_CASE("damaged headers are refused with the file and tensor named", "[checkpoint]") {
  TempDir dir;
  const std::string data = floats({1, 2, 3});  // 12 bytes
  const std::string entry = R"("t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]})";
  // The well-formed file these variations start from really loads.
  const std::string fine = craft_with(entry, data);
  Checkpoint c = parse_checkpoint(reinterpret_cast<const uint8_t*>(fine.data()), fine.size(), "f");
  REQUIRE(c.find("t"));
  CHECK(c.find("t")->to_vector() == std::vector<float>{1, 2, 3});

  // The header itself.
  CHECK_THAT(error_for(dir, craft(R"({"__metadata__": {"format": )", data)),
             Contains("the header is not valid JSON"));
  CHECK_THAT(error_for(dir, craft("{\"__metadata__\": {\"x\": \"\xff\"}}", "")),
             Contains("the header is not valid JSON"));  // not UTF-8
  CHECK_THAT(error_for(dir, craft("[1, 2]", "")), Contains("must be a JSON object, found array"));
  CHECK_THAT(error_for(dir, craft(std::string("{}\0\0", 4), "")), Contains("not valid JSON"));
  CHECK_THAT(error_for(dir, craft("{" + entry + "}", data)),
             Contains("no __metadata__: not a payless checkpoint"));
  CHECK_THAT(error_for(dir, craft_with(entry + ", " + entry, data)),
             Contains("the header has the key \"t\" twice"));

  // The metadata.
  struct BadHeader {
    const char* json;
    const char* expected;
  };
  const BadHeader bad_metadata[] = {
      {"[]", "__metadata__ must be an object"},
      {R"({"format": "payless-checkpoint-1", "step": 3})", "metadata 'step' must be a string, found 3"},
      {R"({"data_checksum": "0000000000000000"})", "metadata has no 'format'"},
      {R"({"format": "other-1", "data_checksum": "0000000000000000"})",
       "metadata 'format' is 'other-1', expected 'payless-checkpoint-1'"},
      {R"({"format": "payless-checkpoint-1"})", "metadata has no 'data_checksum'"},
      {R"({"format": "payless-checkpoint-1", "data_checksum": "12G4"})",
       "'data_checksum' is '12G4', expected 16 lower-case hex digits"},
  };
  for (const BadHeader& bad : bad_metadata) {
    INFO("__metadata__ " << bad.json);
    CHECK_THAT(error_for(dir, craft("{\"__metadata__\": " + std::string(bad.json) + "}", "")),
               Contains(bad.expected));
  }

  // One tensor entry "t" over the 12 data bytes.
  CHECK_THAT(error_for(dir, craft_with(R"("": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]})", data)),
             Contains("a tensor has an empty name"));
  const BadHeader bad_entries[] = {
      {"[3]", "tensor 't': the header entry must be an object"},
      {R"({"dtype": "F32", "shape": [3]})", "tensor 't': the header entry has no 'data_offsets'"},
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 12], "x": 1})", "tensor 't': unknown key 'x'"},
      {R"({"dtype": "F16", "shape": [6], "data_offsets": [0, 12]})",
       "tensor 't': dtype \"F16\" is not supported"},
      {R"({"dtype": 5, "shape": [3], "data_offsets": [0, 12]})", "tensor 't': dtype must be a string"},
      {R"({"dtype": "F32", "shape": 3, "data_offsets": [0, 12]})", "tensor 't': shape must be an array"},
      {R"({"dtype": "F32", "shape": [-3], "data_offsets": [0, 12]})",
       "tensor 't': a shape entry is negative (-3)"},
      {R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 12]})",
       "tensor 't': a shape entry must be a non-negative integer, found 1.5"},
      {R"({"dtype": "F32", "shape": ["3"], "data_offsets": [0, 12]})",
       "a shape entry must be a non-negative integer"},
      {R"({"dtype": "F32", "shape": [1, 1, 1, 1, 3], "data_offsets": [0, 12]})",
       "tensor 't': shape [1,1,1,1,3] has 5 dimensions; payless tensors have at most 4"},
      // Products that overflow int64, also when a zero would make numel 0.
      {R"({"dtype": "F32", "shape": [4294967296, 4294967296, 3], "data_offsets": [0, 12]})",
       "tensor 't': shape [4294967296,4294967296,3] is too large"},
      {R"({"dtype": "F32", "shape": [4294967296, 0, 4294967296], "data_offsets": [0, 12]})", "is too large"},
      {R"({"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 12]})", "is too large"},
      {R"({"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 12]})",
       "but shape [4611686018427387904] of F32 needs"},  // 4 · numel overflows
      // data_offsets.
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [0]})",
       "tensor 't': data_offsets must be [begin, end], found [0]"},
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [0, -12]})",
       "tensor 't': data_offsets end is negative"},
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [12, 0]})",
       "tensor 't': data_offsets [12,0] end before they begin"},
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})",
       "tensor 't': data_offsets [0,8] hold 8 bytes, but shape [3] of F32 needs 3 x 4 bytes"},
      {R"({"dtype": "F32", "shape": [3], "data_offsets": [4, 16]})",
       "tensor 't': data_offsets [4,16] go past the end of the data section (12 bytes)"},
      {R"({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]})",
       "tensor 't' begins at byte 4 of the data section, leaving a gap after byte 0"},
  };
  for (const BadHeader& bad : bad_entries) {
    INFO("entry \"t\": " << bad.json);
    CHECK_THAT(error_for(dir, craft_with("\"t\": " + std::string(bad.json), data)), Contains(bad.expected));
  }

  // Two tensors over the same 12 bytes.
  const std::string a = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string b = R"("b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]})";
  CHECK_THAT(error_for(dir, craft_with(a + ", " + b, data)),
             Contains("tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)"));
  const std::string c2 = R"("c": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  CHECK_THAT(error_for(dir, craft_with(c2, data)), Contains("the data section has 12 bytes, but the tensors end at byte 4"));
}

TEST_CASE("save_checkpoint refuses what it cannot write faithfully", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("x.ckpt");
  Checkpoint c = sample();
  c.tensors.emplace_back("w", Tensor::zeros({1}));
  CHECK_THROWS_WITH(save_checkpoint(path, c), Contains("two tensors are called 'w'"));
  c = sample();
  c.metadata["format"] = "mine";
  CHECK_THROWS_WITH(save_checkpoint(path, c), Contains("metadata key 'format' is reserved"));
  c = sample();
  c.tensors.emplace_back("bias", Tensor());
  CHECK_THROWS_WITH(save_checkpoint(path, c), Contains("tensor 'bias' is undefined"));
  c = sample();
  c.tensors.emplace_back("__metadata__", Tensor::zeros({1}));
  CHECK_THROWS_WITH(save_checkpoint(path, c), Contains("may not be called __metadata__"));
  c = sample();
  c.metadata["bad"] = "\xff\xfe";
  CHECK_THROWS_WITH(save_checkpoint(path, c), Contains("not valid UTF-8"));
  CHECK_FALSE(fs::exists(path));

  const std::string nowhere = dir.file("no/such/folder/x.ckpt");
  CHECK_THROWS_WITH(save_checkpoint(nowhere, sample()),
                    Contains("cannot save checkpoint '" + nowhere + "'") && Contains("No such file"));
}

TEST_CASE("load_parameters checks every name and shape before copying", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("model.ckpt");
  Checkpoint saved;
  saved.tensors = {{"fc.weight", Tensor::from_data({2, 3}, {1, 2, 3, 4, 5, 6})},
                   {"fc.bias", Tensor::from_data({2}, {7, 8})},
                   {"optimizer.exp_avg.fc.bias", Tensor::from_data({2}, {9, 9})}};
  save_checkpoint(path, saved);
  Checkpoint loaded = load_checkpoint(path);

  Tensor weight = Tensor::zeros({2, 3}, true), bias = Tensor::zeros({2}, true);
  // The optimizer's tensor is skipped by default: it is not a parameter.
  load_parameters(loaded, {{"fc.weight", weight}, {"fc.bias", bias}});
  CHECK(weight.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(bias.to_vector() == std::vector<float>{7, 8});
  CHECK(weight.requires_grad());

  Tensor fresh_weight = Tensor::zeros({2, 3}), fresh_bias = Tensor::zeros({2});
  auto message = [&](const NamedTensors& params, std::vector<std::string> skip = {"optimizer."}) {
    try {
      load_parameters(loaded, params, skip);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string file = "checkpoint '" + path + "': ";
  CHECK(message({{"fc.weight", fresh_weight}}) ==
        file + "tensor 'fc.bias' [2] in the checkpoint is not a parameter of the model");
  CHECK(message({{"fc.weight", fresh_weight}, {"fc.bias", fresh_bias}, {"ln.gamma", Tensor::ones({3})},
                 {"ln.beta", Tensor::ones({3})}}) ==
        file + "the model's parameter 'ln.gamma' [3] is missing from the checkpoint (and 1 more)");
  Tensor wide = Tensor::zeros({2, 4});
  CHECK(message({{"fc.weight", wide}, {"fc.bias", fresh_bias}}) ==
        file + "tensor 'fc.weight' has shape [2, 3] in the checkpoint, but the model's parameter has "
               "shape [2, 4]");
  CHECK(message({{"fc.weight", fresh_weight}, {"fc.bias", fresh_bias}}, {}) ==
        file + "tensor 'optimizer.exp_avg.fc.bias' [2] in the checkpoint is not a parameter of the model");
  // Nothing was copied by the failed loads, not even the tensors that matched.
  CHECK(fresh_weight.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(fresh_bias.to_vector() == std::vector<float>(2, 0.0f));
}

TEST_CASE("the committed fuzz seeds are valid checkpoints", "[checkpoint]") {
  const fs::path seeds = PAYLESS_SOURCE_DIR "/tests/fuzz/corpus/fuzz_checkpoint";
  int count = 0;
  for (const auto& entry : fs::directory_iterator(seeds)) {
    INFO(entry.path());
    CHECK_NOTHROW(load_checkpoint(entry.path().string()));
    ++count;
  }
  CHECK(count >= 2);
}

// The writer is killed at random moments while it saves two alternating multi-megabyte contents
// over one path; every time, the file there must load and be one of the two, whole. A writer
// that wrote in place (no temp file + rename) fails this within a few iterations.
TEST_CASE("a checkpoint survives kill -9 of its writer at any moment", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("model.ckpt");
  auto content = [](float base, const char* which) {
    Checkpoint c;
    for (int k = 0; k < 3; ++k) {  // 3 × 1 MB
      Tensor t = Tensor::empty({512, 512});
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = base + static_cast<float>(i % 1000 + k);
      c.tensors.emplace_back("layer" + std::to_string(k), t);
    }
    c.metadata["which"] = which;
    return c;
  };
  const Checkpoint a = content(1.0f, "a"), b = content(-5.0f, "b");
  save_checkpoint(path, a);

  std::mt19937 gen(2024);
  int seen_a = 0, seen_b = 0;
  for (int iteration = 0; iteration < 30; ++iteration) {
    const pid_t parent = getpid();
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child never returns into the test runner: it saves until killed, then _exit.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (int k = 0; k < 100000 && getppid() == parent; ++k) {
        try {
          save_checkpoint(path, k % 2 == 0 ? b : a);
        } catch (...) {
          _exit(3);
        }
      }
      _exit(0);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(gen() % 20000));
    kill(child, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));  // not an early exit: the writer was still saving

    INFO("iteration " << iteration);
    Checkpoint loaded;
    REQUIRE_NOTHROW(loaded = load_checkpoint(path));
    const std::string which = loaded.metadata_value("which");
    CHECK(same_content(loaded, which == "a" ? a : b));
    (which == "a" ? seen_a : seen_b)++;
  }
  // Both contents were seen, so the kills did land while saves were completing.
  CHECK(seen_a > 0);
  CHECK(seen_b > 0);
}

TEST_CASE("scripts/read_checkpoint.py reads our files with numpy alone", "[checkpoint][python]") {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    FAIL("/usr/bin/python3 with numpy is needed by this test: install python3-numpy "
         "(scripts/install_deps.sh does)");
  TempDir dir;
  auto run = [](const std::string& file, int& status) {
    const payless::testing::CommandResult r = payless::testing::run_command(
        "/usr/bin/python3 " PAYLESS_SOURCE_DIR "/scripts/read_checkpoint.py '" + file + "'");
    status = r.status;
    return r.output;
  };

  const std::string path = dir.file("model.ckpt");
  save_checkpoint(path, sample());
  const std::string bytes = read_bytes(path);
  const uint64_t n = header_length(bytes);
  const std::string checksum = hex16(checksum64(bytes.data() + 8 + n, bytes.size() - 8 - n));

  int status = -1;
  std::string out = run(path, status);
  INFO(out);
  CHECK(status == 0);
  const std::vector<std::string> lines = {
      "  format: payless-checkpoint-1\n",
      "  step: 12\n",
      "  data_checksum: " + checksum + "\n",
      "tensors: 5 (25 values, 100 bytes)\n",
      "  decoder.embed_tokens.weight  F32 [4, 3]  first values: 0 0.5 1 1.5 2 2.5 ...\n",
      "  decoder.layers.0.fc1.bias  F32 [8]  first values: -0 1.00053e-42 3.25 -7 inf nan ...\n",
      "  a_scalar  F32 []  first values: 42\n",
      "  empty  F32 [0, 3]  first values: \n",
      "  w  F32 [2, 2]  first values: 1 2 3 4\n",
      "checksum: OK (" + checksum + ")\n"};
  for (const std::string& line : lines) CHECK_THAT(out, Contains(line));

  // A multi-megabyte file with a data section that is a multiple of 8 bytes checks out too.
  Checkpoint big;
  big.tensors.emplace_back("big", Tensor::arange(1 << 20));
  const std::string big_path = dir.file("big.ckpt");
  save_checkpoint(big_path, big);
  out = run(big_path, status);
  CHECK(status == 0);
  CHECK_THAT(out, Contains("  big  F32 [1048576]  first values: 0 1 2 3 4 5 ...\n"));
  CHECK_THAT(out, Contains("checksum: OK"));

  // And it sees a flipped bit.
  std::string damaged = bytes;
  damaged[8 + n + 40] ^= 1;
  write_bytes(path, damaged);
  out = run(path, status);
  CHECK(status != 0);
  CHECK_THAT(out, Contains("checkpoint '" + path + "': data checksum mismatch"));
}
