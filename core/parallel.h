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

// Called first thing in main(): when OMP_WAIT_POLICY or OPENBLAS_THREAD_TIMEOUT is not set, sets
// it (PASSIVE; 4, OpenBLAS's shortest poll before its idle threads sleep) and re-runs the program
// (execv of /proc/self/exe with the same arguments), because both runtimes read them once, when
// they are loaded, before main. Returns normally when both were already set or the re-run is not
// possible (then the runtimes' defaults apply). Why: parallel.cpp.
void default_to_passive_wait_policy(char** argv);

constexpr int64_t kParallelMinWork = 32768;

}  // namespace payless
