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

// Called first thing in main(): when OMP_WAIT_POLICY is not set, sets it to PASSIVE and re-runs
// the program (execv of /proc/self/exe with the same arguments), because the OpenMP runtime reads
// it once, when it is loaded, before main. Returns normally when the variable was already set or
// the re-run is not possible (then the runtime's default applies). Why PASSIVE: parallel.cpp.
void default_to_passive_wait_policy(char** argv);

constexpr int64_t kParallelMinWork = 32768;

}  // namespace payless
