// Threads: one setting for OpenMP and OpenBLAS together.
//
// Debian's OpenBLAS is the pthread build with its own pool, so it must be told the thread count
// separately from OpenMP; and we never call BLAS from inside an OpenMP region (that would
// oversubscribe the cores). Kernels parallelise only when the work is large enough to pay for
// waking the other threads: kParallelMinWork is that threshold, in multiply-adds or elements.
#pragma once

#include <cstdint>

namespace payless {

void set_num_threads(int n);
int num_threads();

constexpr int64_t kParallelMinWork = 32768;

}  // namespace payless
