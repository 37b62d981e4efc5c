// Checkpoint files (see core/serialize.h for the layout): the writer, the checked reader and the
// copy into a model's parameters.
//
// Reading is split in two so that a file and a memory image share every check: parse_header()
// validates the header text against the size of the data section and returns the tensors'
// places in it; the callers then fill the tensors (from memory, or with fread straight into the
// tensors' storage so a large model is never held twice) and compare the checksum.
#include "core/serialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "core/rng.h"

namespace payless {

// The data section is the tensors' memory as is; a big-endian machine would need a byte swap.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoints assume a little-endian CPU");

namespace {

using nlohmann::json;

constexpr uint64_t kIndexStep = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio, odd
constexpr const char* kMetadataKey = "__metadata__";

// Every error starts with this, so it names the file.
std::string where(const std::string& file) {
  return file.empty() ? std::string("checkpoint (in memory): ") : "checkpoint '" + file + "': ";
}

std::string hex16(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

bool parse_hex16(const std::string& text, uint64_t& value) {
  if (text.size() != 16) return false;
  value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return false;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  return true;
}

// Where one tensor sits in the data section: bytes [begin, end).
struct Entry {
  std::string name;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

struct Layout {
  std::vector<Entry> entries;  // sorted by begin: the order of the bytes
  std::map<std::string, std::string> metadata;  // without the two keys the format itself owns
  uint64_t checksum = 0;
};

// A non-negative JSON integer, or an error naming what it is.
uint64_t json_count(const json& value, const std::string& file, const std::string& what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer())  // nlohmann stores non-negative integers as unsigned
    fail(where(file), what, " is negative (", value.dump(), ")");
  fail(where(file), what, " must be a non-negative integer, found ", value.dump());
}

Entry parse_entry(const std::string& name, const json& spec, uint64_t data_size,
                  const std::string& file) {
  const std::string tensor = "tensor '" + name + "'";
  if (name.empty()) fail(where(file), "a tensor has an empty name");
  if (!spec.is_object())
    fail(where(file), tensor, ": the header entry must be an object with dtype, shape and ",
         "data_offsets, found ", spec.type_name());
  for (auto it = spec.begin(); it != spec.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      fail(where(file), tensor, ": unknown key '", it.key(),
           "' (expected dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!spec.contains(key)) fail(where(file), tensor, ": the header entry has no '", key, "'");

  const json& dtype = spec["dtype"];
  if (!dtype.is_string()) fail(where(file), tensor, ": dtype must be a string, found ", dtype.dump());
  if (dtype.get<std::string>() != "F32")
    fail(where(file), tensor, ": dtype ", dtype.dump(), " is not supported (payless stores F32 only)");

  const json& dims = spec["shape"];
  if (!dims.is_array()) fail(where(file), tensor, ": shape must be an array, found ", dims.dump());
  if (dims.size() > static_cast<size_t>(Shape::kMaxRank))
    fail(where(file), tensor, ": shape ", dims.dump(), " has ", dims.size(),
         " dimensions; payless tensors have at most ", Shape::kMaxRank);
  std::vector<int64_t> sizes;
  // numel, and the product of the non-zero sizes: every partial product a kernel may form
  // (Shape::outer/inner) must fit in int64 even when another dimension is zero.
  int64_t numel = 1, nonzero_product = 1;
  for (const json& d : dims) {
    uint64_t size = json_count(d, file, tensor + ": a shape entry");
    if (size > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(nonzero_product, std::max<int64_t>(static_cast<int64_t>(size), 1),
                               &nonzero_product))
      fail(where(file), tensor, ": shape ", dims.dump(), " is too large");
    numel *= static_cast<int64_t>(size);  // cannot overflow: bounded by nonzero_product
    sizes.push_back(static_cast<int64_t>(size));
  }

  const json& offsets = spec["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(where(file), tensor, ": data_offsets must be [begin, end], found ", offsets.dump());
  Entry entry;
  entry.name = name;
  entry.shape = Shape(sizes);
  entry.begin = json_count(offsets[0], file, tensor + ": data_offsets begin");
  entry.end = json_count(offsets[1], file, tensor + ": data_offsets end");
  if (entry.end < entry.begin)
    fail(where(file), tensor, ": data_offsets ", offsets.dump(), " end before they begin");
  uint64_t bytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), sizeof(float), &bytes) ||
      bytes != entry.end - entry.begin)
    fail(where(file), tensor, ": data_offsets ", offsets.dump(), " hold ", entry.end - entry.begin,
         " bytes, but shape ", entry.shape.str(), " of F32 needs ", numel, " x 4 bytes");
  if (entry.end > data_size)
    fail(where(file), tensor, ": data_offsets ", offsets.dump(),
         " go past the end of the data section (", data_size,
         " bytes): the file is truncated or the offsets are wrong");
  return entry;
}

// Checks the header text completely, against a data section of `data_size` bytes.
Layout parse_header(const char* text, size_t size, uint64_t data_size, const std::string& file) {
  // A repeated key would silently hide one of the two entries; nlohmann keeps the last, so catch
  // it while parsing. One set of keys per open object.
  std::vector<std::set<std::string>> open_objects;
  json::parser_callback_t refuse_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    else if (event == json::parse_event_t::object_end) open_objects.pop_back();
    else if (event == json::parse_event_t::key &&
             !open_objects.back().insert(parsed.get<std::string>()).second)
      fail(where(file), "the header has the key ", parsed.dump(), " twice");
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of the input and would ignore what follows.
  if (const void* nul = std::memchr(text, '\0', size))
    fail(where(file), "the header is not valid JSON (a NUL byte at header offset ",
         static_cast<const char*>(nul) - text, ")");
  json header;
  try {
    header = json::parse(text, text + size, refuse_duplicates);
  } catch (const json::exception& e) {
    fail(where(file), "the header is not valid JSON (", e.what(), ")");
  }
  if (!header.is_object()) fail(where(file), "the header must be a JSON object, found ", header.type_name());

  Layout layout;
  auto meta = header.find(kMetadataKey);
  if (meta == header.end())
    fail(where(file), "the header has no __metadata__: not a payless checkpoint");
  if (!meta->is_object()) fail(where(file), "__metadata__ must be an object, found ", meta->type_name());
  for (auto it = meta->begin(); it != meta->end(); ++it) {
    if (!it->is_string())
      fail(where(file), "metadata '", it.key(), "' must be a string, found ", it->dump());
    layout.metadata[it.key()] = it->get<std::string>();
  }
  auto format = layout.metadata.find("format");
  if (format == layout.metadata.end())
    fail(where(file), "metadata has no 'format': not a payless checkpoint");
  if (format->second != kCheckpointFormat)
    fail(where(file), "metadata 'format' is '", format->second, "', expected '", kCheckpointFormat, "'");
  auto checksum = layout.metadata.find("data_checksum");
  if (checksum == layout.metadata.end()) fail(where(file), "metadata has no 'data_checksum'");
  if (!parse_hex16(checksum->second, layout.checksum))
    fail(where(file), "metadata 'data_checksum' is '", checksum->second,
         "', expected 16 lower-case hex digits");
  layout.metadata.erase(format);
  layout.metadata.erase(checksum);

  for (auto it = header.begin(); it != header.end(); ++it)
    if (it.key() != kMetadataKey) layout.entries.push_back(parse_entry(it.key(), *it, data_size, file));

  // The tensors must tile the data section exactly: back to back from 0 to its end.
  std::sort(layout.entries.begin(), layout.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : layout.entries) {
    if (e.begin < cursor)
      fail(where(file), "tensor '", e.name, "' (bytes ", e.begin, "..", e.end, ") overlaps tensor '",
           previous->name, "' (bytes ", previous->begin, "..", previous->end, ")");
    if (e.begin > cursor)
      fail(where(file), "tensor '", e.name, "' begins at byte ", e.begin, " of the data section, ",
           "leaving a gap after byte ", cursor, "; tensors must be stored back to back");
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data_size)
    fail(where(file), "the data section has ", data_size, " bytes, but the tensors end at byte ",
         cursor, ": extra bytes at the end of the file");
  return layout;
}

// Reads the 8-byte header length and checks it against the file size.
uint64_t header_length(const uint8_t* first8, uint64_t file_size, const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | first8[i];
  if (n > kMaxCheckpointHeaderBytes)
    fail(where(file), "header length ", n, " is above the limit of ", kMaxCheckpointHeaderBytes,
         " bytes: not a checkpoint, or a damaged one");
  if (n > file_size - 8)
    fail(where(file), "header length ", n, " goes past the end of the file (", file_size,
         " bytes): the file is truncated or not a checkpoint");
  return n;
}

void check_checksum(const Layout& layout, uint64_t actual, const std::string& file) {
  if (actual != layout.checksum)
    fail(where(file), "data checksum mismatch (header says ", hex16(layout.checksum),
         ", the data hashes to ", hex16(actual), "): the file is corrupt");
}

// The tensors in the order they are written (by name), after checking they can be written.
std::vector<const std::pair<std::string, Tensor>*> writing_order(const Checkpoint& checkpoint) {
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& entry : checkpoint.tensors) {
    if (entry.first.empty()) fail("save_checkpoint: a tensor has an empty name");
    if (entry.first == kMetadataKey) fail("save_checkpoint: a tensor may not be called __metadata__");
    if (!entry.second.defined()) fail("save_checkpoint: tensor '", entry.first, "' is undefined");
    order.push_back(&entry);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->first == order[i - 1]->first)
      fail("save_checkpoint: two tensors are called '", order[i]->first, "'");
  for (const char* reserved : {"format", "data_checksum"})
    if (checkpoint.metadata.count(reserved))
      fail("save_checkpoint: metadata key '", reserved, "' is reserved; save_checkpoint writes it");
  return order;
}

size_t byte_size(const Tensor& t) { return static_cast<size_t>(t.numel()) * sizeof(float); }

// The 8 length bytes and the padded JSON header for these tensors and this checksum.
std::string encode_header(const Checkpoint& checkpoint,
                          const std::vector<const std::pair<std::string, Tensor>*>& order,
                          uint64_t checksum) {
  json header = json::object();
  json meta = json::object();
  for (const auto& [key, value] : checkpoint.metadata) meta[key] = value;
  meta["format"] = kCheckpointFormat;
  meta["data_checksum"] = hex16(checksum);
  header[kMetadataKey] = meta;
  uint64_t offset = 0;
  for (const auto* entry : order) {
    const Tensor& t = entry->second;
    uint64_t end = offset + byte_size(t);
    header[entry->first] = {{"dtype", "F32"}, {"shape", t.shape().to_vector()},
                            {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    fail("save_checkpoint: a tensor name or metadata string is not valid UTF-8");
  }
  // Spaces up to a multiple of 8, as the safetensors writer does, so the data that follows the
  // 8 + N bytes is 8-byte aligned when the file is mapped into memory.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  return out + text;
}

uint64_t data_checksum(const std::vector<const std::pair<std::string, Tensor>*>& order) {
  Checksum64 hash;
  for (const auto* entry : order) hash.update(entry->second.data(), byte_size(entry->second));
  return hash.finish();
}

// Removes a half-written temp file and reports errno, which the failed call has just set.
[[noreturn]] void abandon_temp_file(FILE* f, const std::string& temp, const std::string& path,
                                    const char* step) {
  int error = errno;
  if (f) std::fclose(f);
  std::remove(temp.c_str());
  fail("cannot save checkpoint '", path, "': ", step, " '", temp, "' failed: ", std::strerror(error));
}

std::string folder_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

// ---------------------------------------------------------------- checksum

void Checksum64::update(const void* bytes, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(bytes);
  while (size > 0 && pending_bytes_ > 0) {  // finish the partial word left by the last call
    pending_ |= static_cast<uint64_t>(*p++) << (8 * pending_bytes_);
    --size;
    if (++pending_bytes_ == 8) {
      sum_ += mix64(pending_ + words_++ * kIndexStep);
      pending_ = 0;
      pending_bytes_ = 0;
    }
  }
  uint64_t sum = sum_, index = words_;
  for (; size >= 8; size -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // little-endian load (static_assert above)
    sum += mix64(word + index++ * kIndexStep);
  }
  sum_ = sum;
  words_ = index;
  for (; size > 0; --size) pending_ |= static_cast<uint64_t>(*p++) << (8 * pending_bytes_++);
}

uint64_t Checksum64::finish() const {
  uint64_t sum = sum_;
  // The partial word is zero-padded: its missing high bytes are already 0 in pending_.
  if (pending_bytes_ > 0) sum += mix64(pending_ + words_ * kIndexStep);
  return mix64(sum ^ (words_ * 8 + static_cast<uint64_t>(pending_bytes_)));
}

uint64_t checksum64(const void* bytes, size_t size) {
  Checksum64 hash;
  hash.update(bytes, size);
  return hash.finish();
}

// ---------------------------------------------------------------- Checkpoint

const Tensor* Checkpoint::find(const std::string& name) const {
  for (const auto& entry : tensors)
    if (entry.first == name) return &entry.second;
  return nullptr;
}

const std::string& Checkpoint::metadata_value(const std::string& key) const {
  auto it = metadata.find(key);
  if (it == metadata.end()) fail(where(source), "metadata has no '", key, "'");
  return it->second;
}

// ---------------------------------------------------------------- writing

std::string encode_checkpoint(const Checkpoint& checkpoint) {
  auto order = writing_order(checkpoint);
  std::string out = encode_header(checkpoint, order, data_checksum(order));
  for (const auto* entry : order)
    out.append(reinterpret_cast<const char*>(entry->second.data()), byte_size(entry->second));
  return out;
}

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  auto order = writing_order(checkpoint);
  std::string header = encode_header(checkpoint, order, data_checksum(order));

  // The temp file lives in the target's folder: rename() is atomic only within one file system.
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  auto give_up = [&](FILE* f, const char* step) { abandon_temp_file(f, temp, path, step); };
  FILE* f = std::fopen(temp.c_str(), "wb");
  if (!f) give_up(nullptr, "creating");
  bool written = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const auto* entry : order) {
    size_t n = byte_size(entry->second);
    written = written && std::fwrite(entry->second.data(), 1, n, f) == n;
  }
  if (!written) give_up(f, "writing");
  // fflush moves our buffer to the kernel; fsync moves the kernel's pages to the disk. Only then
  // may the new file replace the old one, or a power cut could leave a renamed, empty file.
  if (std::fflush(f) != 0) give_up(f, "writing");
  if (fsync(fileno(f)) != 0) give_up(f, "fsync of");
  if (std::fclose(f) != 0) give_up(nullptr, "closing");
  if (std::rename(temp.c_str(), path.c_str()) != 0) give_up(nullptr, "renaming over the target");

  // The rename itself is a change to the folder; fsync the folder so that it survives a power cut.
  const std::string folder = folder_of(path);
  int dir = open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir < 0) fail("checkpoint '", path, "' was written, but its folder cannot be opened for fsync: ",
                    std::strerror(errno));
  int synced = fsync(dir);
  int error = errno;
  close(dir);
  // EINVAL: the file system cannot sync folders (some network and FUSE ones); nothing to do then.
  if (synced != 0 && error != EINVAL)
    fail("checkpoint '", path, "' was written, but fsync of its folder failed: ", std::strerror(error));
}

// ---------------------------------------------------------------- reading

Checkpoint parse_checkpoint(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  if (size < 8)
    fail(where(file), "the file has ", size, " bytes, fewer than the 8-byte header length");
  uint64_t n = header_length(data, size, file);
  const uint8_t* section = data + 8 + n;  // (data section) bytes
  const uint64_t section_size = size - 8 - n;
  Layout layout = parse_header(reinterpret_cast<const char*>(data + 8), n, section_size, file);
  check_checksum(layout, checksum64(section, section_size), file);

  Checkpoint checkpoint;
  checkpoint.source = file;
  checkpoint.metadata = std::move(layout.metadata);
  for (const Entry& e : layout.entries) {
    Tensor t = Tensor::empty(e.shape);
    if (e.end > e.begin) std::memcpy(t.data(), section + e.begin, e.end - e.begin);
    checkpoint.tensors.emplace_back(e.name, t);
  }
  return checkpoint;
}

Checkpoint load_checkpoint(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(where(path), "cannot open: ", std::strerror(errno));
  // Closes the file on every path out, errors included.
  std::unique_ptr<FILE, int (*)(FILE*)> closer(f, std::fclose);
  struct stat info;
  if (fstat(fileno(f), &info) != 0) fail(where(path), "cannot stat: ", std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail(where(path), "not a regular file");
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  auto read_exactly = [&](void* into, uint64_t n, const char* what) {
    if (n > 0 && std::fread(into, 1, n, f) != n)
      fail(where(path), "the file ended while reading ", what,
           " (truncated, or changed while being read)");
  };

  if (size < 8) fail(where(path), "the file has ", size, " bytes, fewer than the 8-byte header length");
  uint8_t first8[8];
  read_exactly(first8, 8, "the header length");
  const uint64_t n = header_length(first8, size, path);
  std::string header(n, '\0');
  read_exactly(&header[0], n, "the header");
  Layout layout = parse_header(header.data(), header.size(), size - 8 - n, path);

  // The entries tile the data section in order, so reading them one after another reads it all.
  Checkpoint checkpoint;
  checkpoint.source = path;
  Checksum64 hash;
  for (const Entry& e : layout.entries) {
    Tensor t = Tensor::empty(e.shape);
    read_exactly(t.data(), e.end - e.begin, ("tensor '" + e.name + "'").c_str());
    hash.update(t.data(), e.end - e.begin);
    checkpoint.tensors.emplace_back(e.name, t);
  }
  check_checksum(layout, hash.finish(), path);
  checkpoint.metadata = std::move(layout.metadata);
  return checkpoint;
}

// ---------------------------------------------------------------- into a model

void load_parameters(const Checkpoint& checkpoint, const NamedTensors& params,
                     const std::vector<std::string>& skip_prefixes) {
  const std::string& file = checkpoint.source;
  auto skipped = [&](const std::string& name) {
    for (const auto& prefix : skip_prefixes)
      if (name.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
  };
  std::map<std::string, const Tensor*> stored;
  for (const auto& [name, tensor] : checkpoint.tensors)
    if (!skipped(name) && !stored.emplace(name, &tensor).second)
      fail(where(file), "tensor '", name, "' appears twice");

  // Check everything first, so that a failed load leaves the model as it was.
  std::vector<std::pair<Tensor, const Tensor*>> copies;  // (parameter, checkpoint tensor)
  std::set<std::string> wanted;
  std::vector<std::string> missing;
  for (const auto& [name, param] : params) {
    if (!wanted.insert(name).second) continue;  // the same parameter listed twice
    auto it = stored.find(name);
    if (it == stored.end()) {
      missing.push_back("'" + name + "' " + param.shape().str());
      continue;
    }
    if (it->second->shape() != param.shape())
      fail(where(file), "tensor '", name, "' has shape ", it->second->shape().str(),
           " in the checkpoint, but the model's parameter has shape ", param.shape().str());
    copies.emplace_back(param, it->second);
  }
  if (!missing.empty())
    fail(where(file), "the model's parameter ", missing[0], " is missing from the checkpoint",
         missing.size() > 1 ? " (and " + std::to_string(missing.size() - 1) + " more)" : "");
  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : stored)
    if (!wanted.count(name)) unexpected.push_back("'" + name + "' " + tensor->shape().str());
  if (!unexpected.empty())
    fail(where(file), "tensor ", unexpected[0], " in the checkpoint is not a parameter of the model",
         unexpected.size() > 1 ? " (and " + std::to_string(unexpected.size() - 1) + " more)" : "");

  for (auto& [param, source] : copies)
    if (!param.same_as(*source))
      std::memcpy(param.data(), source->data(), byte_size(param));
}

}  // namespace payless
