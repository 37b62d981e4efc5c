// Comparisons the kernel and op tests share: random buffers from a fixed seed, left-padding masks,
// a fast kernel's output against its reference loop (tolerance per element), bit equality, the
// largest difference of two tensors, and runs at 1 and 2 threads.
//
//   for (int threads : {1, 2}) {
//     ThreadScope scope(threads);
//     ... CHECK(count_mismatches(fast, reference, 1e-5, 1e-5) == 0);
//   }
//
// Header-only: CMake compiles only gradcheck.cpp and catch_main.cpp from tests/support. The
// gradient check is in gradcheck.h, the PyTorch golden files in fixtures.h.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace payless::testing {

// Sets the thread count (OpenMP and OpenBLAS) for one scope and puts the previous one back, also
// when a REQUIRE ends the test early.
struct ThreadScope {
  explicit ThreadScope(int n) : previous(num_threads()) { set_num_threads(n); }
  ~ThreadScope() { set_num_threads(previous); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
  int previous;
};

// n values uniform in [low, high) from a fixed seed: plain buffers for the raw kernels.
inline std::vector<float> random_values(int64_t n, uint64_t seed, float low = -1.0f, float high = 1.0f) {
  Tensor t = Tensor::empty(Shape{n});
  Rng rng(seed);
  rng.uniform_(t, low, high);
  return t.to_vector();
}

// (B, S) mask with `pads[b]` padded positions at the left of row b.
inline Tensor left_padding_mask(const std::vector<int64_t>& pads, int64_t S) {
  Tensor mask = Tensor::zeros({static_cast<int64_t>(pads.size()), S});
  for (size_t b = 0; b < pads.size(); ++b)
    for (int64_t s = 0; s < pads[b]; ++s) mask.data()[b * S + s] = 1.0f;
  return mask;
}

// Counts elements with |got − want| > atol + rtol·|want|; reports the first one.
inline int64_t count_mismatches(const std::vector<float>& got, const std::vector<float>& want,
                                double atol, double rtol) {
  REQUIRE(got.size() == want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bool ok = std::fabs(double(got[i]) - want[i]) <= atol + rtol * std::fabs(double(want[i]));
    if (!ok && bad++ == 0) UNSCOPED_INFO("first mismatch at " << i << ": " << got[i] << " vs " << want[i]);
  }
  return bad;
}

// Same length and the same bits (so NaN equals NaN and -0 differs from 0).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Max |a - b| over two equally shaped tensors.
inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  float m = 0.0f;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.data()[i] - b.data()[i]));
  return m;
}

// `run` twice with 1 thread and twice with 2: each pair gives the same bits, and so do 1 and 2
// threads (no reduction whose order depends on how the work was split).
inline void check_same_bits_at_1_and_2_threads(const std::function<std::vector<float>()>& run) {
  std::vector<float> one, two;
  {
    ThreadScope scope(1);
    one = run();
    CHECK(same_bits(one, run()));
  }
  {
    ThreadScope scope(2);
    two = run();
    CHECK(same_bits(two, run()));
  }
  CHECK(same_bits(one, two));
}

}  // namespace payless::testing
