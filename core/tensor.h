// Tensor: float32 values, row-major and always contiguous, at most 4 dimensions.
//
// A Tensor is a cheap handle (one shared_ptr) to a TensorImpl; copying a Tensor shares it. Views
// made by reshape() share the Storage too, so no data is copied. An op that would need strides
// (transpose, permute, narrow on an inner dim) copies instead: one contiguous layout keeps every
// kernel a plain loop.
//
// Gradients: a tensor with requires_grad gets a gradient buffer of its own shape the first time a
// backward closure accumulates into it (grad_ptr()). See core/autograd.h for the tape, and
// core/ops.h for everything you can compute with tensors. Token ids are not Tensors: see IdTensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/shape.h"

namespace payless {

// A 64-byte aligned float buffer. Freed buffers go back to a cache keyed by size class (see
// tensor.cpp), because a training step allocates the same activation sizes over and over.
// pack_storages() may move the buffer into a shared block: `data` then points into the block,
// `block` keeps it alive, and the destructor leaves the memory to the block.
struct Storage {
  explicit Storage(int64_t size);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data;
  int64_t size;
  std::shared_ptr<void> block;  // set by pack_storages; empty for a buffer of its own
};

// The bytes a buffer of `size` floats really occupies: the size rounded up to its class (at most
// 1/8 more above 4 KiB, a multiple of 64 bytes below).
size_t size_class_bytes(int64_t size);

// What the buffer cache holds and how often it served a request (diagnostics and tests; in
// sanitizer builds the cache is off and every request is a miss that is not counted).
struct BufferCacheStats {
  size_t cached_bytes = 0;  // free buffers kept for reuse
  size_t live_bytes = 0, peak_live_bytes = 0;  // tensor buffers in use: now, and the most ever
  int64_t hits = 0, misses = 0;
};
BufferCacheStats buffer_cache_stats();

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in floats, into storage (views made by reshape/narrow along dim 0)
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<Storage> grad;  // same numel as shape; made by grad_ptr (zeroed) or grad_target
  std::string name;               // set for parameters; error messages use it
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (e.g. "no bias")

  // Creation. Values are uninitialised for empty().
  static Tensor empty(const Shape& shape, bool requires_grad = false);
  static Tensor zeros(const Shape& shape, bool requires_grad = false);
  static Tensor ones(const Shape& shape, bool requires_grad = false);
  static Tensor full(const Shape& shape, float value, bool requires_grad = false);
  static Tensor from_data(const Shape& shape, const std::vector<float>& values,
                          bool requires_grad = false);
  static Tensor scalar(float value, bool requires_grad = false);
  static Tensor arange(int64_t n);  // [0, 1, ..., n-1], shape (n)

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int rank() const { return impl().shape.rank(); }
  int64_t size(int dim) const { return impl().shape[dim]; }
  int64_t numel() const { return impl().shape.numel(); }

  float* data() { return impl().storage->data + impl().offset; }
  const float* data() const { return impl().storage->data + impl().offset; }
  float item() const;  // the value of a one-element tensor
  std::vector<float> to_vector() const;

  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool value = true);
  bool has_grad() const { return impl().grad != nullptr; }
  // The gradient as a tensor sharing the gradient buffer (no grad of its own). Undefined if no
  // gradient has been accumulated yet.
  Tensor grad() const;
  // Pointer to the gradient buffer, allocating it zero-filled on first use. Backward closures
  // accumulate into it (+=); they never assign.
  float* grad_ptr() const;  // const: a Tensor is a handle; this changes the shared impl
  // The gradient buffer for a backward closure that writes every element of it: grad_ptr() when
  // the buffer exists (fresh = false: add into it). When it does not, a new buffer left
  // uninitialised (fresh = true): the closure then assigns each element once (=, or GEMM
  // beta = 0), which saves zero-filling the buffer and reading the zeros back. Sanitizer builds
  // fill it with NaN, so a closure that misses an element fails its gradient check.
  struct GradTarget {
    float* data;
    bool fresh;
    float beta() const { return fresh ? 0.0f : 1.0f; }  // for GEMMs that write the gradient
  };
  GradTarget grad_target() const;
  void zero_grad();  // drops the buffer; the next accumulation starts from zero again

  // The same values, sharing storage, outside of autograd (no requires_grad, no history).
  Tensor detach() const;
  // A deep copy of the values (no gradient history).
  Tensor clone_data() const;

  const std::string& name() const { return impl().name; }
  Tensor& set_name(std::string name);
  // "'decoder.layers.0.fc1.weight' [512, 1024]" or "[512, 1024]": what errors print.
  std::string describe() const;

  bool same_as(const Tensor& other) const { return impl_ == other.impl_; }
  // How many handles share this tensor (the tape's saved copies included); for tests.
  long use_count() const { return impl_.use_count(); }
  TensorImpl& impl() const;
  static Tensor from_impl(std::shared_ptr<TensorImpl> impl);

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Moves the storages of `tensors` (each once, in the order given; tied tensors share one) into a
// single contiguous block of memory that asks the kernel for 2 MiB pages (madvise
// MADV_HUGEPAGE), and frees their old buffers. Values, shapes and views stay as they were: every
// tensor sharing a moved Storage sees the new place. For a model's parameters (Module::
// pack_parameters), so that a decoding step, which reads every weight once, streams one region
// with 512 times fewer TLB entries: 70 MB of weights read at 37 GB/s on 2 MiB pages against
// 19 GB/s on 4 KiB pages, one core (docs/benchmarks.md). No raw pointer into the old buffers may
// be held across the call. Returns the bytes packed.
size_t pack_storages(const std::vector<Tensor>& tensors);

// True when `t`'s storage lives in a block made by pack_storages.
bool in_packed_block(const Tensor& t);

// Token ids (int32): what embeddings gather and losses compare against. Not differentiable, so
// they need none of Tensor's machinery.
struct IdTensor {
  IdTensor() = default;
  IdTensor(const Shape& shape, std::vector<int32_t> values);
  Shape shape;
  std::vector<int32_t> values;
  int64_t numel() const { return shape.numel(); }
  int32_t at(int64_t i) const { return values[i]; }
};

}  // namespace payless
