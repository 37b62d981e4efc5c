// Copy kernels behind the shape and index ops (core/ops/shape.cpp): strided row copies (narrow,
// concat, split), the 4-D permutation walk (transpose, permute), broadcast copies (expand) and
// row gathers (embedding), each with the accumulating variant its backward needs.
//
// What this is: plain functions on raw float pointers and sizes; no Tensor, no autograd, no shape
// checks (the ops check). Everything is padded to 4 dims by the caller: a rank-2 tensor (M, N) is
// (1, 1, M, N) here. What this is not: a strided-tensor engine; every buffer is contiguous.
//
// Threads: copies are memory-bound, so more threads only pay on large ones (n > kParallelMinWork
// elements). Every parallel loop writes disjoint outputs, so results never depend on the thread
// count. The two many-to-one accumulations (broadcast_sum, scatter_add_rows) are serial: several
// sources hit the same destination, and a serial sum is deterministic.
#pragma once

#include <cstdint>

namespace payless::kernels {

// `rows` rows of `row_len` floats: row r of dst (at dst + r·dst_stride) = row r of src
// (at src + r·src_stride). Strides are in floats and >= row_len.
void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t row_len);
// The same walk with dst += src: how narrow, concat and split accumulate gradients.
void add_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
              int64_t row_len);

// src (dims[0], dims[1], dims[2], dims[3]) -> dst whose dim i is src dim order[i]:
//   dst[o0, o1, o2, o3] = src[i] with i[order[k]] = o_k.
// accumulate: dst += instead of dst =. When the last dim stays last (order[3] == 3, e.g. the
// attention reshuffle (B, T, H, D) -> (B, H, T, D)), whole D-length rows are copied.
void permute(const float* src, const int64_t dims[4], const int order[4], float* dst,
             bool accumulate);
// The same contract as four plain nested loops, serial. For tests only.
void permute_reference(const float* src, const int64_t dims[4], const int order[4], float* dst,
                       bool accumulate);

// dst (out_dims, contiguous)[o0, o1, o2, o3] = src[Σ o_k · strides[k]]; a stride of 0 repeats
// the source along that dim (numpy broadcasting).
void broadcast_copy(const float* src, const int64_t strides[4], const int64_t out_dims[4],
                    float* dst);
// The adjoint: acc[Σ o_k · strides[k]] += g[o] over the whole output, i.e. summed over the
// repeated dims. Serial (many outputs hit one acc element).
void broadcast_sum(const float* g, const int64_t strides[4], const int64_t out_dims[4], float* acc);

// dst row i (row_len floats) = table row ids[i], for i in [0, n). Ids must be in range.
void gather_rows(const float* table, int64_t row_len, const int32_t* ids, int64_t n, float* dst);
// The adjoint: table_grad row ids[i] += g row i, skipping ids equal to skip_id (-1: none).
// Serial in i so that repeated ids always sum in the same order.
void scatter_add_rows(const float* g, int64_t row_len, const int32_t* ids, int64_t n,
                      int32_t skip_id, float* table_grad);

}  // namespace payless::kernels
