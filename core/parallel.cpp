// See core/parallel.h.
#include "core/parallel.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace payless {

void set_num_threads(int n) {
  if (n < 1) fail("thread count must be at least 1, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

namespace {

// The helper threads of parallel_chunks and the one job they share.
//
// `ticket` holds the job's number (high 32 bits) and the next chunk to hand out (low 32 bits).
// A chunk is claimed by a compare-and-swap of the ticket from (job, i) to (job, i + 1), so a
// helper still holding an earlier job can never take a chunk of a later one. To publish a job the
// caller first closes the ticket under the new number (kClosed: nothing to take), then writes the
// job (release), then opens the ticket at chunk 0. A helper reads the ticket, the job (acquire),
// and the ticket again: if the job it read were a later one, the second read would show that
// later number, because the job's release-write came after the closing of that number.
class Helpers {
 public:
  static Helpers& instance() {
    static Helpers helpers;
    return helpers;
  }
  ~Helpers() { stop(); }

  void run(int64_t chunks, const std::function<void(int64_t)>& chunk, int helpers) {
    std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);
    if (static_cast<int>(threads_.size()) != helpers) {
      stop();
      start(helpers);
    }
    const uint64_t job = ++job_;
    ticket_.store(job << 32 | kClosed, std::memory_order_seq_cst);
    finished_.store(0, std::memory_order_relaxed);
    chunk_.store(&chunk, std::memory_order_release);
    chunks_.store(chunks, std::memory_order_release);
    ticket_.store(job << 32, std::memory_order_seq_cst);
    // Sleeping helpers are woken through the mutex, so that none can check the ticket, miss the
    // job and then sleep past the notification. (The ticket store above and this load are both
    // sequentially consistent, as are the helper's increment and its check of the ticket.)
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      wake_.notify_all();
    }
    const int64_t mine = work(job, chunks, chunk);
    // The chunks the helpers took: each is short, and the helper that took it is running (if the
    // system took its core away meanwhile, yielding gives it back).
    for (int spin = 1; mine + finished_.load(std::memory_order_acquire) < chunks; ++spin)
      if (spin % 64 != 0) pause();
      else sched_yield();
  }

 private:
  static constexpr uint64_t kClosed = 0xFFFFFFFFu;

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // Takes and runs chunks of `job` until none is left; returns how many it ran.
  int64_t work(uint64_t job, int64_t chunks, const std::function<void(int64_t)>& chunk) {
    int64_t ran = 0;
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t next = t & kClosed;
      if (t >> 32 != job || next >= static_cast<uint64_t>(chunks)) return ran;
      if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        chunk(static_cast<int64_t>(next));
        ++ran;
        t = ticket_.load(std::memory_order_acquire);
      }
    }
  }

  // `seen` is the last job published before this helper was started: the job that started it
  // comes later and may be open before the thread runs, and must not count as seen.
  void helper_loop(uint64_t seen) {
    using Clock = std::chrono::steady_clock;
    for (;;) {
      // Wait for a job newer than `seen`: poll, yielding the core, then sleep.
      Clock::time_point poll_until = Clock::now() + std::chrono::microseconds(kHelperPollMicroseconds);
      uint64_t t;
      for (int spin = 1;; ++spin) {
        t = ticket_.load(std::memory_order_acquire);
        if (stopping_.load(std::memory_order_relaxed)) return;
        if (is_new_open(t, seen)) break;
        if (spin % 64 != 0) {
          pause();
        } else if (Clock::now() < poll_until) {
          sched_yield();
        } else {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] {
            return stopping_.load(std::memory_order_relaxed) ||
                   is_new_open(ticket_.load(std::memory_order_seq_cst), seen);
          });
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
          poll_until = Clock::now() + std::chrono::microseconds(kHelperPollMicroseconds);
        }
      }
      const uint64_t job = t >> 32;
      const std::function<void(int64_t)>* chunk = chunk_.load(std::memory_order_acquire);
      const int64_t chunks = chunks_.load(std::memory_order_acquire);
      if (ticket_.load(std::memory_order_acquire) >> 32 != job) continue;  // a later job came
      seen = job;
      const int64_t ran = work(job, chunks, *chunk);
      if (ran > 0) finished_.fetch_add(ran, std::memory_order_release);
    }
  }

  static bool is_new_open(uint64_t ticket, uint64_t seen) {
    return ticket >> 32 != seen && (ticket & kClosed) != kClosed;
  }

  void start(int helpers) {
    stopping_.store(false);
    const uint64_t seen = job_;  // under run_mutex_, before the next job is numbered
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this, seen] { helper_loop(seen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  std::mutex run_mutex_;  // one caller's job at a time
  uint64_t job_ = 0;      // the caller's job counter (under run_mutex_)
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<const std::function<void(int64_t)>*> chunk_{nullptr};
  std::atomic<int64_t> chunks_{0};
  std::atomic<int64_t> finished_{0};  // chunks the helpers ran, of the current job
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

thread_local bool in_chunk = false;

}  // namespace

void parallel_chunks(int64_t chunks, const std::function<void(int64_t)>& chunk) {
  PAYLESS_ASSERT(!in_chunk && !omp_in_parallel());
  PAYLESS_ASSERT(chunks >= 0 && chunks < (int64_t{1} << 31));
  const int helpers = num_threads() - 1;
  if (helpers == 0 || chunks <= 1) {
    for (int64_t i = 0; i < chunks; ++i) chunk(i);
    return;
  }
  // Marks the helpers' chunks too (each runs on a helper thread inside this call).
  const std::function<void(int64_t)> marked = [&chunk](int64_t i) {
    in_chunk = true;
    chunk(i);
    in_chunk = false;
  };
  Helpers::instance().run(chunks, marked, helpers);
}

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
