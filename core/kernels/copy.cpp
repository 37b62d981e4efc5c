// See copy.h. The loops are written so the innermost one runs over contiguous floats where it
// can (memcpy, or a plain loop the compiler vectorises).
#include "core/kernels/copy.h"

#include <cstring>

#include "core/parallel.h"

namespace payless::kernels {

void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t row_len) {
  const int64_t n = rows * row_len;
  if (rows == 1 || (src_stride == row_len && dst_stride == row_len)) {
    // One contiguous block: split it by elements, so a single long row still uses every thread.
#pragma omp parallel for schedule(static) if (n > kParallelMinWork)
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    return;
  }
#pragma omp parallel for schedule(static) if (n > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride, src + r * src_stride, sizeof(float) * row_len);
}

void add_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
              int64_t row_len) {
  const int64_t n = rows * row_len;
  if (rows == 1 || (src_stride == row_len && dst_stride == row_len)) {
#pragma omp parallel for schedule(static) if (n > kParallelMinWork)
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    return;
  }
#pragma omp parallel for schedule(static) if (n > kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * src_stride;
    float* d = dst + r * dst_stride;
    for (int64_t i = 0; i < row_len; ++i) d[i] += s[i];
  }
}

namespace {

// Strides (in floats) of a contiguous 4-D buffer.
void contiguous_strides(const int64_t dims[4], int64_t strides[4]) {
  strides[3] = 1;
  for (int k = 2; k >= 0; --k) strides[k] = strides[k + 1] * dims[k + 1];
}

}  // namespace

// Output position (o0, o1, o2, o3) reads src at Σ o_k · step[k], step[k] = src stride of dim
// order[k]. The output is written in order, so every thread owns a contiguous part of dst.
void permute(const float* src, const int64_t dims[4], const int order[4], float* dst,
             bool accumulate) {
  int64_t in_strides[4], out_dims[4], step[4];
  contiguous_strides(dims, in_strides);
  for (int k = 0; k < 4; ++k) {
    out_dims[k] = dims[order[k]];
    step[k] = in_strides[order[k]];
  }
  const int64_t n = out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3];
  const int64_t d = out_dims[3];
  const bool rows_stay = order[3] == 3;  // src rows of length d are dst rows too
#pragma omp parallel for collapse(3) schedule(static) if (n > kParallelMinWork)
  for (int64_t o0 = 0; o0 < out_dims[0]; ++o0)
    for (int64_t o1 = 0; o1 < out_dims[1]; ++o1)
      for (int64_t o2 = 0; o2 < out_dims[2]; ++o2) {
        const float* s = src + o0 * step[0] + o1 * step[1] + o2 * step[2];
        float* t = dst + ((o0 * out_dims[1] + o1) * out_dims[2] + o2) * d;
        if (rows_stay) {
          if (accumulate) {
            for (int64_t i = 0; i < d; ++i) t[i] += s[i];
          } else {
            std::memcpy(t, s, sizeof(float) * d);
          }
        } else if (accumulate) {
          for (int64_t i = 0; i < d; ++i) t[i] += s[i * step[3]];
        } else {
          for (int64_t i = 0; i < d; ++i) t[i] = s[i * step[3]];
        }
      }
}

// Walks the SOURCE in order and computes where each element lands: the opposite direction to
// permute(), so a mistake in one is unlikely to be repeated in the other.
void permute_reference(const float* src, const int64_t dims[4], const int order[4], float* dst,
                       bool accumulate) {
  int64_t out_dims[4], out_strides[4];
  for (int k = 0; k < 4; ++k) out_dims[k] = dims[order[k]];
  contiguous_strides(out_dims, out_strides);
  int64_t where[4];  // where[j]: dst stride of src dim j
  for (int k = 0; k < 4; ++k) where[order[k]] = out_strides[k];
  int64_t s = 0;
  for (int64_t i0 = 0; i0 < dims[0]; ++i0)
    for (int64_t i1 = 0; i1 < dims[1]; ++i1)
      for (int64_t i2 = 0; i2 < dims[2]; ++i2)
        for (int64_t i3 = 0; i3 < dims[3]; ++i3, ++s) {
          int64_t o = i0 * where[0] + i1 * where[1] + i2 * where[2] + i3 * where[3];
          dst[o] = accumulate ? dst[o] + src[s] : src[s];
        }
}

void broadcast_copy(const float* src, const int64_t strides[4], const int64_t out_dims[4],
                    float* dst) {
  const int64_t n = out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3];
  const int64_t d = out_dims[3];
#pragma omp parallel for collapse(3) schedule(static) if (n > kParallelMinWork)
  for (int64_t o0 = 0; o0 < out_dims[0]; ++o0)
    for (int64_t o1 = 0; o1 < out_dims[1]; ++o1)
      for (int64_t o2 = 0; o2 < out_dims[2]; ++o2) {
        const float* s = src + o0 * strides[0] + o1 * strides[1] + o2 * strides[2];
        float* t = dst + ((o0 * out_dims[1] + o1) * out_dims[2] + o2) * d;
        for (int64_t i = 0; i < d; ++i) t[i] = s[i * strides[3]];
      }
}

void broadcast_sum(const float* g, const int64_t strides[4], const int64_t out_dims[4],
                   float* acc) {
  int64_t o = 0;
  for (int64_t o0 = 0; o0 < out_dims[0]; ++o0)
    for (int64_t o1 = 0; o1 < out_dims[1]; ++o1)
      for (int64_t o2 = 0; o2 < out_dims[2]; ++o2) {
        float* a = acc + o0 * strides[0] + o1 * strides[1] + o2 * strides[2];
        for (int64_t i = 0; i < out_dims[3]; ++i, ++o) a[i * strides[3]] += g[o];
      }
}

void gather_rows(const float* table, int64_t row_len, const int32_t* ids, int64_t n, float* dst) {
#pragma omp parallel for schedule(static) if (n * row_len > kParallelMinWork)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * row_len, table + static_cast<int64_t>(ids[i]) * row_len,
                sizeof(float) * row_len);
}

void scatter_add_rows(const float* g, int64_t row_len, const int32_t* ids, int64_t n,
                      int32_t skip_id, float* table_grad) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] == skip_id) continue;
    float* row = table_grad + static_cast<int64_t>(ids[i]) * row_len;
    const float* gi = g + i * row_len;
    for (int64_t c = 0; c < row_len; ++c) row[c] += gi[c];
  }
}

}  // namespace payless::kernels
