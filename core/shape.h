// Shape: the sizes of a tensor's dimensions, at most 4 (B, H, T, C is the largest we need).
// A fixed array rather than a std::vector, so making a tensor never allocates for its shape.
// Rank 0 is a scalar (numel 1). Negative dimension indices count from the end, as in Python.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"

namespace payless {

class Shape {
 public:
  static constexpr int kMaxRank = 4;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }

  int rank() const { return rank_; }
  int64_t operator[](int dim) const { return dims_[normalize(dim)]; }
  int64_t& operator[](int dim) { return dims_[normalize(dim)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  // Product of the sizes before / after `dim`: a tensor viewed as (outer, size(dim), inner).
  int64_t outer(int dim) const {
    int64_t n = 1;
    for (int i = 0; i < normalize(dim); ++i) n *= dims_[i];
    return n;
  }
  int64_t inner(int dim) const {
    int64_t n = 1;
    for (int i = normalize(dim) + 1; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  int64_t last() const { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }
  int normalize(int dim) const {
    int d = dim < 0 ? dim + rank_ : dim;
    if (d < 0 || d >= rank_) fail("dimension ", dim, " is out of range for shape ", str());
    return d;
  }
  std::vector<int64_t> to_vector() const { return std::vector<int64_t>(dims_, dims_ + rank_); }
  bool operator==(const Shape& other) const {
    if (rank_ != other.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != other.dims_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }

 private:
  template <typename It>
  void assign(It begin, It end) {
    for (It it = begin; it != end; ++it) {
      if (rank_ == kMaxRank) fail("a tensor has at most ", kMaxRank, " dimensions");
      if (*it < 0) fail("negative dimension size ", *it);
      dims_[rank_++] = *it;
    }
  }
  int64_t dims_[kMaxRank] = {0, 0, 0, 0};
  int rank_ = 0;
};

}  // namespace payless
