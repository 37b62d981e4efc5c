// Elementwise loops shared by the ops in core/ops/elementwise.cpp.
//
// These are templates on the per-element function so that the compiler inlines and vectorises
// it; each loop is its own reference (there is nothing to make "fast" beyond the plain loop), and
// the only decision made here is when to use more than one thread: only when the work is large
// enough to pay for waking the other threads (kParallelMinWork), so small tensors never spin.
#pragma once

#include <cstdint>

#include "core/parallel.h"
#include "core/rng.h"

namespace payless::kernels {

// y[i] = f(x[i])
template <typename F>
void map(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// y[i] = f(a[i], b[i])
template <typename F>
void map2(const float* a, const float* b, float* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

// y[i] = f(i)
template <typename F>
void generate(float* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) y[i] = f(i);
}

// acc[i] += f(i): the shape of every elementwise backward.
template <typename F>
void accumulate(float* acc, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) acc[i] += f(i);
}

// A backward's elementwise write: acc[i] = f(i) into a fresh gradient buffer (Tensor::grad_target),
// acc[i] += f(i) into one that already holds a sum.
template <typename F>
void write_or_accumulate(float* acc, bool fresh, int64_t n, F f) {
  if (fresh)
    generate(acc, n, f);
  else
    accumulate(acc, n, f);
}

// The same for one row inside a kernel's own (already parallel) row loop: serial, vectorised.
template <typename F>
inline void write_or_add_row(float* row, bool fresh, int64_t n, F f) {
  if (fresh) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) row[i] = f(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) row[i] += f(i);
  }
}

// Dropout's loop, forward and backward: out[i] = in[i]·scale_i (or out[i] += it, accumulate),
// with scale_i = keep_scale when random_bits24(key, i) >= min_kept_bits and 0 otherwise. Restrict pointers and a select instead of a branch, so the hash vectorises.
inline void dropout_rows(const float* __restrict in, float* __restrict out, int64_t n,
                         const DropoutMask& mask, bool accumulate) {
  // The fields as plain locals: the loops then vectorise (through the struct they did not, and
  // a tiny model's step was 10% slower).
  const uint64_t key = mask.key, min_kept_bits = mask.min_kept_bits;
  const float keep_scale = mask.keep_scale;
  if (accumulate) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
    for (int64_t i = 0; i < n; ++i)
      out[i] += in[i] * (random_bits24(key, static_cast<uint64_t>(i)) >= min_kept_bits ? keep_scale : 0.0f);
  } else {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
    for (int64_t i = 0; i < n; ++i)
      out[i] = in[i] * (random_bits24(key, static_cast<uint64_t>(i)) >= min_kept_bits ? keep_scale : 0.0f);
  }
}

// Broadcast walk over an output of (up to) 4 dims: calls f(out_index, a_index, b_index) for every
// output element, where a and b repeat along their size-1 dims (stride 0). Serial, because
// backward uses it to accumulate into the smaller operand, where two output elements hit the
// same input element.
struct BroadcastPlan {
  int64_t out_dims[4];
  int64_t a_strides[4];
  int64_t b_strides[4];
};

template <typename F>
void for_each_broadcast(const BroadcastPlan& p, F f) {
  int64_t o = 0;
  for (int64_t i0 = 0; i0 < p.out_dims[0]; ++i0)
    for (int64_t i1 = 0; i1 < p.out_dims[1]; ++i1)
      for (int64_t i2 = 0; i2 < p.out_dims[2]; ++i2) {
        int64_t a = i0 * p.a_strides[0] + i1 * p.a_strides[1] + i2 * p.a_strides[2];
        int64_t b = i0 * p.b_strides[0] + i1 * p.b_strides[1] + i2 * p.b_strides[2];
        for (int64_t i3 = 0; i3 < p.out_dims[3]; ++i3, ++o)
          f(o, a + i3 * p.a_strides[3], b + i3 * p.b_strides[3]);
      }
}

}  // namespace payless::kernels
