// Tensor creation, storage and gradient buffers (see core/tensor.h), and the RNG fills.
#include "core/tensor.h"

#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "core/autograd.h"
#include "core/rng.h"

namespace payless {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// `bytes` (a multiple of 4 KiB) of zeroed memory at a 2 MiB boundary, marked for 2 MiB pages.
// mmap gives 4 KiB alignment only: map 2 MiB more and unmap the ends. The kernel backs with a
// 2 MiB page only the 2 MiB stretches that lie wholly inside the mapping, so a size that is not a
// multiple of 2 MiB costs no memory beyond its last 4 KiB page. Where the kernel does not do
// transparent huge pages, madvise fails and the memory is ordinary: no error.
void* map_huge(size_t bytes) {
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + bytes + kHugePage, used_end = aligned + bytes;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

// Buffers from kHugeBufferBytes up are mapped on 2 MiB pages (map_huge), smaller ones come from
// malloc. A large activation is streamed by the memory-bound kernels (dropout, layer norm,
// softmax, the losses) and reading on 2 MiB pages is 1.6x as fast on this machine (`bench ops`:
// 17-18 against 28-33 GB/s, one core). Sanitizer builds use malloc throughout, which
// AddressSanitizer watches.
#ifndef PAYLESS_NO_BUFFER_CACHE
constexpr size_t kHugeBufferBytes = kHugePage;
#else
constexpr size_t kHugeBufferBytes = ~size_t(0);
#endif

size_t whole_pages(size_t bytes) { return (bytes + 4095) / 4096 * 4096; }

float* allocate_buffer(size_t bytes) {  // bytes: a size class (size_class_bytes)
  void* p = bytes >= kHugeBufferBytes ? map_huge(whole_pages(bytes)) : std::aligned_alloc(64, bytes);
  return static_cast<float*>(p);
}
void free_buffer(float* p, size_t bytes) {
  if (bytes >= kHugeBufferBytes) munmap(p, whole_pages(bytes));
  else std::free(p);
}

// Cache of freed buffers, keyed by size class. A training step allocates the same activation
// sizes every time, so after the first step almost every allocation is a cache hit instead of a
// malloc of megabytes (which glibc serves with mmap and page faults). Real batches vary in shape
// (token-budget batches of B sentences × T tokens), so the key is not the exact size but the size
// rounded up to one of eight classes per octave: a buffer wastes at most 1/8 of its bytes, and a
// batch a little smaller or larger than the last one still finds its buffers. With exact sizes the
// cache filled up with shapes never seen again. It keeps at most max(1 GiB, the most the process
// has had in use at once): enough for a whole step of any model the process trains (a fixed
// 1 GiB left the 4 GB of an IWSLT-sized step to munmap and page faults, 24% of its time in the
// kernel zeroing pages), and never more than the memory the process has already shown it needs.
// Sanitizer builds bypass it so that AddressSanitizer still sees every use after free.
class BufferCache {
 public:
  float* take(int64_t size) {
    size_t b = size_class_bytes(size);
#ifndef PAYLESS_NO_BUFFER_CACHE
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.live_bytes += b;
      stats_.peak_live_bytes = std::max(stats_.peak_live_bytes, stats_.live_bytes);
      auto it = free_.find(b);
      if (it != free_.end() && !it->second.empty()) {
        float* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= b;
        ++stats_.hits;
        return p;
      }
      ++stats_.misses;
    }
#endif
    float* p = allocate_buffer(b);
    if (!p) fail("out of memory allocating a tensor of ", size, " floats");
    return p;
  }
  void give_back(float* p, int64_t size) {
#ifndef PAYLESS_NO_BUFFER_CACHE
    size_t b = size_class_bytes(size);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.live_bytes -= b;
    if (stats_.cached_bytes + b <= std::max(kMinCacheLimit, stats_.peak_live_bytes)) {
      free_[b].push_back(p);
      stats_.cached_bytes += b;
      return;
    }
#endif
    free_buffer(p, size_class_bytes(size));
  }
  // Frees a buffer for good, bypassing the cache (its memory has moved elsewhere).
  void release(float* p, int64_t size) {
#ifndef PAYLESS_NO_BUFFER_CACHE
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.live_bytes -= size_class_bytes(size);
    }
#endif
    free_buffer(p, size_class_bytes(size));
  }
  BufferCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  static constexpr size_t kMinCacheLimit = size_t(1) << 30;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<float*>> free_;  // class bytes -> free buffers
  BufferCacheStats stats_;
};

BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache();  // never destroyed: tensors may outlive statics
  return *cache;
}

}  // namespace

size_t size_class_bytes(int64_t size) {
  size_t b = static_cast<size_t>(size > 0 ? size : 1) * sizeof(float);
  if (b <= 4096) return (b + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
  // Eight classes per octave: round up to a multiple of 2^(floor(log2 b) - 3).
  int top = 63 - __builtin_clzll(static_cast<unsigned long long>(b));
  size_t step = size_t(1) << (top - 3);
  return (b + step - 1) / step * step;
}

BufferCacheStats buffer_cache_stats() { return buffer_cache().stats(); }

Storage::Storage(int64_t n) : data(buffer_cache().take(n)), size(n) {}
Storage::~Storage() {
  if (!block) buffer_cache().give_back(data, size);
}

namespace {

// A block for pack_storages, unmapped when the last storage in it goes.
std::shared_ptr<void> map_huge_block(size_t bytes) {
  const size_t length = whole_pages(bytes);
  void* p = map_huge(length);
  if (!p) fail("out of memory allocating a block of ", bytes, " bytes for parameters");
  return std::shared_ptr<void>(p, [length](void* q) { munmap(q, length); });
}

}  // namespace

size_t pack_storages(const std::vector<Tensor>& tensors) {
  // Each storage once, in order of first appearance; 64-byte aligned slices.
  std::vector<Storage*> storages;
  std::vector<size_t> offsets;
  size_t bytes = 0;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    Storage* s = t.impl().storage.get();
    if (std::find(storages.begin(), storages.end(), s) != storages.end()) continue;
    storages.push_back(s);
    offsets.push_back(bytes);
    bytes += (static_cast<size_t>(std::max<int64_t>(s->size, 1)) * sizeof(float) + 63) / 64 * 64;
  }
  if (storages.empty()) return 0;
  std::shared_ptr<void> block = map_huge_block(bytes);
  char* base = static_cast<char*>(block.get());
  for (size_t i = 0; i < storages.size(); ++i) {
    Storage* s = storages[i];
    float* moved = reinterpret_cast<float*>(base + offsets[i]);
    std::memcpy(moved, s->data, sizeof(float) * static_cast<size_t>(s->size));
    if (!s->block) buffer_cache().release(s->data, s->size);
    s->data = moved;
    s->block = block;  // a storage already in a block lets go of it here; the block lives on
  }                    // while any of its storages does
  return bytes;
}

bool in_packed_block(const Tensor& t) { return t.defined() && t.impl().storage->block != nullptr; }

TensorImpl& Tensor::impl() const {
  if (!impl_) fail("use of an undefined tensor");
  return *impl_;
}

Tensor Tensor::from_impl(std::shared_ptr<TensorImpl> impl) {
  Tensor t;
  t.impl_ = std::move(impl);
  return t;
}

Tensor Tensor::empty(const Shape& shape, bool requires_grad) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape.numel());
  impl->shape = shape;
  impl->requires_grad = requires_grad;
  return from_impl(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, float value, bool requires_grad) {
  Tensor t = empty(shape, requires_grad);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, bool requires_grad) {
  Tensor t = empty(shape, requires_grad);
  std::memset(t.data(), 0, sizeof(float) * t.numel());
  return t;
}

Tensor Tensor::ones(const Shape& shape, bool requires_grad) {
  return full(shape, 1.0f, requires_grad);
}

Tensor Tensor::from_data(const Shape& shape, const std::vector<float>& values,
                         bool requires_grad) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    fail("from_data: ", values.size(), " values do not fill shape ", shape.str());
  Tensor t = empty(shape, requires_grad);
  std::memcpy(t.data(), values.data(), sizeof(float) * values.size());
  return t;
}

Tensor Tensor::scalar(float value, bool requires_grad) { return full(Shape{}, value, requires_grad); }

Tensor Tensor::arange(int64_t n) {
  Tensor t = empty(Shape{n});
  for (int64_t i = 0; i < n; ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

float Tensor::item() const {
  if (numel() != 1) fail("item: ", describe(), " has ", numel(), " elements, not 1");
  return data()[0];
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + numel()); }

Tensor& Tensor::set_requires_grad(bool value) {
  impl().requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const {
  if (!has_grad()) return Tensor();
  auto g = std::make_shared<TensorImpl>();
  g->storage = impl().grad;
  g->shape = impl().shape;
  g->name = impl().name.empty() ? "" : impl().name + ".grad";
  return from_impl(std::move(g));
}

float* Tensor::grad_ptr() const {
  TensorImpl& t = impl();
  if (!t.grad) {
    t.grad = std::make_shared<Storage>(t.shape.numel());
    std::memset(t.grad->data, 0, sizeof(float) * t.shape.numel());
  }
  return t.grad->data;
}

Tensor::GradTarget Tensor::grad_target() const {
  TensorImpl& t = impl();
  if (t.grad) return {t.grad->data, false};
  t.grad = std::make_shared<Storage>(t.shape.numel());
#ifdef PAYLESS_NO_BUFFER_CACHE
  std::fill_n(t.grad->data, t.shape.numel(), std::numeric_limits<float>::quiet_NaN());
#endif
  return {t.grad->data, true};
}

void Tensor::zero_grad() { impl().grad.reset(); }

Tensor Tensor::detach() const {
  auto d = std::make_shared<TensorImpl>();
  d->storage = impl().storage;
  d->offset = impl().offset;
  d->shape = impl().shape;
  d->name = impl().name;
  return from_impl(std::move(d));
}

Tensor Tensor::clone_data() const {
  Tensor c = empty(shape());
  std::memcpy(c.data(), data(), sizeof(float) * numel());
  return c;
}

Tensor& Tensor::set_name(std::string name) {
  impl().name = std::move(name);
  return *this;
}

std::string Tensor::describe() const {
  if (!impl_) return "<undefined tensor>";
  if (impl_->name.empty()) return "tensor " + impl_->shape.str();
  return "'" + impl_->name + "' " + impl_->shape.str();
}

IdTensor::IdTensor(const Shape& s, std::vector<int32_t> v) : shape(s), values(std::move(v)) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    fail("IdTensor: ", values.size(), " ids do not fill shape ", shape.str());
}

// ---- random fills (core/rng.h) ----

void Rng::uniform_(Tensor& t, float low, float high) {
  uint64_t stream = take_stream();
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * uniform01(seed_, stream, i);
}

void Rng::normal_(Tensor& t, float mean, float stddev) {
  // Box-Muller on the pair of uniforms (2i, 2i+1); 1 - u keeps the log argument in (0, 1].
  uint64_t stream = take_stream();
  float* p = t.data();
  const double two_pi = 6.283185307179586;
  for (int64_t i = 0; i < t.numel(); ++i) {
    double u1 = 1.0 - uniform01(seed_, stream, 2 * i);
    double u2 = uniform01(seed_, stream, 2 * i + 1);
    p[i] = mean + stddev * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2));
  }
}

void Rng::xavier_uniform_(Tensor& t) {
  if (t.rank() != 2) fail("xavier_uniform_: ", t.describe(), " is not a 2-D (out, in) weight");
  float bound = std::sqrt(6.0f / static_cast<float>(t.size(0) + t.size(1)));
  uniform_(t, -bound, bound);
}

Rng& global_rng() {
  static Rng rng(1);
  return rng;
}

void manual_seed(uint64_t seed) { global_rng().restore(seed, 0); }

}  // namespace payless
