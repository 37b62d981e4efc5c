// See core/parallel.h.
#include "core/parallel.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"

namespace payless {

void set_num_threads(int n) {
  if (n < 1) fail("thread count must be at least 1, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

// Why payless waits passively unless told otherwise. With the default policy, GNU OpenMP's idle
// threads spin for a while (GOMP_SPINCOUNT, 300000 rounds) at every barrier before sleeping; an
// ACTIVE policy spins for good. Both take the core from OpenBLAS's own threads, and on a machine
// whose second vCPU is half taken by other work a spinning barrier waits for a thread that is
// not running. Measured 2026-11-29 on our 2-vCPU machine shared with training runs (load 10-12),
// `bench decode --config small --task lm --threads 2` and `bench train --child --config small
// --task lm --arch dynamic --threads 2`, in sentences/s (decode b1 / b32, dynamic) and tokens/s:
//   PASSIVE          25-65 / 103-178,  train 2765-3630
//   default (unset)  13-35 /  36-94,   train 1407-1988
//   GOMP_SPINCOUNT=10000: 27 / 151, train 3354;  ACTIVE 39-44 / 86-102, train 1332-1914
// (ACTIVE's one good figure, conv decoding at batch 1, came with the Transformer's falling to
// 2.4). The cost of PASSIVE on an idle machine is a futex wake-up per parallel region, which the
// kernels keep rare by their work thresholds (kParallelMinWork, kSmallGemmParallelWork).
//
// OpenBLAS's own idle threads do the same between calls: they poll for work with sched_yield for
// 2^28 cycles (its default OPENBLAS_THREAD_TIMEOUT of 28) before sleeping, and while our OpenMP
// kernels run on both cores those polls take turns with them. At two threads that was 20% of the
// samples of a tiny translation step (perf: __schedule and do_sched_yield under sched_yield).
// OPENBLAS_THREAD_TIMEOUT=4, its minimum, puts them to sleep almost at once. Measured back to
// back on the idle machine (13:50, load < 1), `bench train --child --threads 2`, tokens/s:
// tiny/mt/transformer 33,361 and 39,052 -> 45,963 and 45,615; small/mt/transformer 3,825 -> 3,916;
// small/lm/dynamic 7,564 -> 7,605; and `bench decode --config small --task mt --threads 2` equal or
// faster in 7 of 8 settings (greedy batch 32 of the Transformer 5% slower, within the noise).
void default_to_passive_wait_policy(char** argv) {
  const bool omp_set = std::getenv("OMP_WAIT_POLICY") != nullptr;
  const bool blas_set = std::getenv("OPENBLAS_THREAD_TIMEOUT") != nullptr;
  if (omp_set && blas_set) return;
  if (!omp_set && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  if (!blas_set && setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached if the re-run failed (no /proc): go on with the runtimes' defaults.
  if (!omp_set) unsetenv("OMP_WAIT_POLICY");
  if (!blas_set) unsetenv("OPENBLAS_THREAD_TIMEOUT");
}

}  // namespace payless
