// The row reductions of core/kernels/reduce.h against plain double loops, at every length around
// the vector width (whole vectors, the scalar tail, both), and max_of's handling of NaN and -inf.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/kernels/reduce.h"

using namespace payless;

namespace {

std::vector<float> wavy(int64_t n, float phase) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = std::sin(0.7f * static_cast<float>(i) + phase) * 3.0f + 0.25f;
  return x;
}

}  // namespace

TEST_CASE("sum_of, dot_of and sum_over equal double loops at lengths around the vector width",
          "[kernels][reduce]") {
  for (int64_t n : {0, 1, 5, 15, 16, 17, 31, 32, 33, 64, 100, 1000}) {
    const std::vector<float> a = wavy(n, 0.1f), b = wavy(n, 1.3f);
    double sum = 0.0, dot = 0.0, squares = 0.0, magnitude = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      sum += a[i];
      dot += double(a[i]) * b[i];
      squares += double(a[i] - 0.5f) * double(a[i] - 0.5f);
      magnitude += std::fabs(a[i]) + std::fabs(double(a[i]) * b[i]);
    }
    const double tolerance = 1e-6 * (1.0 + magnitude);
    INFO("n = " << n);
    CHECK(std::fabs(kernels::sum_of(a.data(), n) - sum) <= tolerance);
    CHECK(std::fabs(kernels::dot_of(a.data(), b.data(), n) - dot) <= tolerance);
    const float* p = a.data();
    CHECK(std::fabs(kernels::sum_over(n, [p](int64_t i) { return (p[i] - 0.5f) * (p[i] - 0.5f); }) - squares) <=
          1e-6 * (1.0 + squares));
  }
  // Each position counts exactly once: a single 1 anywhere sums to 1.
  for (int64_t n : {1, 16, 17, 47}) {
    for (int64_t at = 0; at < n; ++at) {
      std::vector<float> x(static_cast<size_t>(n), 0.0f);
      x[at] = 1.0f;
      INFO("n = " << n << ", the 1 at " << at);
      CHECK(kernels::sum_of(x.data(), n) == 1.0f);
    }
  }
}

TEST_CASE("max_of is the largest value at every length and position, NaN passed over",
          "[kernels][reduce]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(kernels::max_of(nullptr, 0) == -inf);
  for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 1000}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = -1.0f - 0.25f * static_cast<float>((i * 7) % 13);
    for (int64_t at = 0; at < n; at += std::max<int64_t>(1, n / 7)) {  // the max in every block
      std::vector<float> y = x;
      y[at] = -0.5f;
      INFO("n = " << n << ", max at " << at);
      CHECK(kernels::max_of(y.data(), n) == -0.5f);
      y[(at + 1) % n] = nan;
      if (n > 1) CHECK(kernels::max_of(y.data(), n) == -0.5f);
    }
  }
  const float with_inf[] = {-inf, -inf, 3.0f, -inf};
  CHECK(kernels::max_of(with_inf, 4) == 3.0f);
}

