// Threads: one setting for OpenMP and OpenBLAS together.
//
// Debian's OpenBLAS is the pthread build with its own pool, so it must be told the thread count
// separately from OpenMP; and we never call BLAS from inside an OpenMP region (that would
// oversubscribe the cores). Kernels parallelise only when the work is large enough to pay for
// waking the other threads: kParallelMinWork is that threshold, in multiply-adds or elements.
#pragma once

#include <cstdint>
#include <functional>

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

// Runs chunk(i) for every i in [0, chunks), on the calling thread and num_threads() - 1 helper
// threads of payless's own, each taking the next undone i until none is left; returns when all
// are done. Which thread runs which i varies, so chunk(i) must write only its own part of the
// output (then the result has the same bits at any thread count).
// For runs of short jobs issued one after another, which an OpenMP region serves badly under the
// passive wait policy: every region wakes its sleeping threads through the kernel, about 40 µs,
// as long as the one-row product of a 512 x 512 weight it would split. After a job the helpers
// keep looking for the next one for kHelperPollMicroseconds (yielding the core to any other
// thread that wants it) and only then sleep, so the 40-odd products of a decoding step wake
// them once, not 40 times. The caller never waits for a helper that has not started: chunks
// nobody took, it runs itself. Must not be called from inside an OpenMP region or a chunk.
void parallel_chunks(int64_t chunks, const std::function<void(int64_t)>& chunk);
constexpr int64_t kHelperPollMicroseconds = 200;

}  // namespace payless
