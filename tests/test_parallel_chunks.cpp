// parallel_chunks (core/parallel.h): every chunk runs exactly once, job after job, at 1, 2 and 3
// threads, across changes of the thread count, when the helpers have gone to sleep between jobs,
// and with empty and one-chunk jobs; the helpers do take part; two callers at once each get their
// whole job; and a split one-row product keeps its bits.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/kernels/matmul.h"
#include "core/parallel.h"
#include "tests/support/compare.h"

using namespace payless;
using namespace payless::testing;

namespace {

// Runs one job of `chunks` chunks and checks each ran once; returns the threads that ran them.
std::set<std::thread::id> run_counted(int64_t chunks, std::chrono::microseconds per_chunk = {}) {
  std::vector<std::atomic<int>> runs(static_cast<size_t>(chunks));
  for (auto& r : runs) r.store(0);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  parallel_chunks(chunks, [&](int64_t i) {
    runs[static_cast<size_t>(i)].fetch_add(1);
    if (per_chunk.count() > 0) std::this_thread::sleep_for(per_chunk);
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  int64_t wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1;
  CHECK(wrong == 0);
  return threads;
}

}  // namespace

TEST_CASE("parallel_chunks runs every chunk once, job after job", "[parallel]") {
  for (int threads : {1, 2, 3, 2}) {
    ThreadScope scope(threads);
    INFO("threads " << threads);
    for (int64_t chunks : {0, 1, 2, 3, 7, 64, 1000}) {
      INFO("chunks " << chunks);
      for (int job = 0; job < 50; ++job) run_counted(chunks);
    }
    // Past the helpers' polling time they sleep; the next job must wake them or run without them.
    for (int job = 0; job < 5; ++job) {
      std::this_thread::sleep_for(std::chrono::microseconds(3 * kHelperPollMicroseconds));
      run_counted(37);
    }
  }
}

TEST_CASE("parallel_chunks hands chunks to the helpers", "[parallel]") {
  // 200 chunks of 100 µs each (the caller sleeps in them, so its core is free): the helpers,
  // awake or woken, take some. Each thread count starts new helpers, and the job that starts
  // them is theirs too (a helper that counted it as already seen left it all to the caller).
  for (int threads : {2, 3, 2}) {
    ThreadScope scope(threads);
    INFO("threads " << threads);
    CHECK(run_counted(200, std::chrono::microseconds(100)).size() >= 2);
    CHECK(run_counted(200, std::chrono::microseconds(100)).size() >= 2);
  }
  ThreadScope one(1);
  const std::set<std::thread::id> alone = run_counted(20);
  REQUIRE(alone.size() == 1);
  CHECK(*alone.begin() == std::this_thread::get_id());
}

TEST_CASE("parallel_chunks called from two threads at once runs each job whole", "[parallel]") {
  ThreadScope scope(2);
  // Jobs from two callers take turns; each caller's chunks all run, once, and only its own.
  std::atomic<int64_t> wrong{0};
  auto caller = [&](int64_t tag) {
    for (int job = 0; job < 200; ++job) {
      const int64_t chunks = 1 + (job * 7 + tag) % 40;
      std::vector<std::atomic<int64_t>> seen(static_cast<size_t>(chunks));
      for (auto& v : seen) v.store(0);
      parallel_chunks(chunks, [&](int64_t i) { seen[static_cast<size_t>(i)].fetch_add(tag); });
      for (auto& v : seen) wrong += v.load() != tag;
    }
  };
  std::thread other(caller, 1000);
  caller(1);
  other.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("a one-row product split over the helpers has the bits of one thread",
          "[parallel][kernels][matmul]") {
  // 1 x 2000 x 512: over kSmallGemmParallelWork, so split at two threads, in many chunks.
  const int64_t N = 2000, K = 512;
  REQUIRE(N * K >= kernels::kSmallGemmParallelWork);
  const std::vector<float> x = random_values(K, 5), W = random_values(N * K, 6);
  check_same_bits_at_1_and_2_threads([&] {
    std::vector<float> y(N, 0.0f);
    for (int rep = 0; rep < 20; ++rep)  // back to back, as in a decoding step
      kernels::gemm_small_m_path(false, true, 1, N, K, 1.0f, x.data(), K, W.data(), K, 0.0f,
                                 y.data(), N);
    return y;
  });
}
