// Reductions of one short row (a softmax row, the head dimension of a dot product) to one
// float, written so that GCC vectorises them well.
//
// An `omp simd reduction` vectorises the loop but ends it by folding the 16 lanes with 16
// dependent scalar operations (for max, GCC 12 does not vectorise std::max at all). On rows of
// 16 to 128 values, the length of most rows here, that fold costs as much as the loop: it was
// 45% of the softmax over a 32-key attention row. These add whole vectors lane by lane and fold
// the lanes once, by halving. Each is its own reference: the tests compare them with plain double
// loops.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace payless::kernels {

// max(x[0..n)), −inf for n = 0; NaNs are passed over. `x > m ? x : m` is exactly one vmaxps per
// 16 values; std::max(m, x) left a scalar chain of dependent maxes (3 cycles per value), over
// half the time of the cross-entropy over a 1000-word vocabulary.
inline float max_of(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

typedef float Lanes16 __attribute__((vector_size(64)));

// The sum of the 16 lanes, by halving: 16 -> 8 -> 4 -> 2 -> 1.
inline float fold_lanes(Lanes16 v) {
  typedef float Lanes8 __attribute__((vector_size(32)));
  typedef float Lanes4 __attribute__((vector_size(16)));
  Lanes8 a, b;
  std::memcpy(&a, &v, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  const Lanes8 h = a + b;
  Lanes4 c, d;
  std::memcpy(&c, &h, sizeof c);
  std::memcpy(&d, reinterpret_cast<const char*>(&h) + sizeof c, sizeof d);
  const Lanes4 q = c + d;
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// Σ f(i) for i in [0, n): f is evaluated 16 indices at a time into 16 lanes (vectorised when f is
// simple arithmetic on arrays), the lanes are folded once at the end, and the last n mod 16
// values are added one by one.
template <typename F>
inline float sum_over(int64_t n, F f) {
  Lanes16 total{};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    float block[16];
#pragma omp simd
    for (int64_t l = 0; l < 16; ++l) block[l] = f(i + l);
    Lanes16 v;
    std::memcpy(&v, block, sizeof v);
    total += v;
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += f(i);
  return fold_lanes(total) + tail;
}

// Σ x[i], with sum_over's order and bits. A loop of its own: written as sum_over with a lambda
// reading x[i], it was as fast up to 32 values and 10% slower at 128 to 1000.
inline float sum_of(const float* x, int64_t n) {
  Lanes16 total{};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    Lanes16 v;
    std::memcpy(&v, x + i, sizeof v);
    total += v;
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += x[i];
  return fold_lanes(total) + tail;
}

// Σ a[i]·b[i]
inline float dot_of(const float* a, const float* b, int64_t n) {
  return sum_over(n, [a, b](int64_t i) { return a[i] * b[i]; });
}

}  // namespace payless::kernels
