// See core/distributed.h. Two builds share this file: with PAYLESS_HAVE_MPI the collectives call
// MPI's C interface; without it every process is a group of one.
#include "core/distributed.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/error.h"

#ifdef PAYLESS_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C interface only: the C++ bindings are deprecated and unneeded
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace payless {
namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}

struct Group {
  bool mpi = false;  // MPI was started (and must be finalised)
  int rank = 0, size = 1, local_size = 1;
};
Group group;

// The watchdog: a thread that sleeps until the main thread has spent `timeout` seconds inside one
// collective, and then ends the process. Why a thread: a blocking MPI call cannot be interrupted,
// and MPI's own progress loop is faster than any polling of non-blocking calls we could write.
// Why end the process instead of calling MPI: MPI was started for calls from the main thread only
// (MPI_THREAD_FUNNELED); a process that exits without MPI_Finalize makes mpirun stop every rank.
class Watchdog {
 public:
  explicit Watchdog(double timeout_seconds) : timeout_(timeout_seconds) {
    if (timeout_ > 0) thread_ = std::thread([this] { watch(); });
  }
  ~Watchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void enter(const char* operation) {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      operation_ = operation;
      since_ = std::chrono::steady_clock::now();
    }
    wake_.notify_one();
  }
  void leave() {
    if (!thread_.joinable()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    operation_ = nullptr;
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      if (!operation_) {
        wake_.wait(lock);
        continue;
      }
      const auto deadline = since_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                         std::chrono::duration<double>(timeout_));
      if (std::chrono::steady_clock::now() < deadline) {
        wake_.wait_until(lock, deadline);  // woken early by enter/leave/stop: look again
        continue;
      }
      std::fprintf(stderr,
                   "payless (rank %d of %d): waited %.0f s in %s for the other ranks; one of them has "
                   "stopped, hung or lost its connection (see its messages). Stopping; resume from the "
                   "last checkpoint (a longer wait: payless train --mpi-timeout SECONDS).\n",
                   group.rank, group.size, timeout_, operation_);
      std::fflush(stderr);
      std::fflush(stdout);
      std::_Exit(1);
    }
  }

  double timeout_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  const char* operation_ = nullptr;  // the collective the main thread is in, or nullptr
  std::chrono::steady_clock::time_point since_;
};
Watchdog* watchdog = nullptr;

// Marks the main thread as inside a collective for the watchdog, for the scope's duration.
struct Watched {
  explicit Watched(const char* operation) {
    if (watchdog) watchdog->enter(operation);
  }
  ~Watched() {
    if (watchdog) watchdog->leave();
  }
};

#ifdef PAYLESS_HAVE_MPI
// MPI counts are int: longer buffers go in pieces.
constexpr int64_t kMaxPiece = int64_t(1) << 30;

template <typename Call>
void in_pieces(int64_t count, Call call) {
  for (int64_t done = 0; done < count; done += kMaxPiece) call(done, static_cast<int>(std::min(kMaxPiece, count - done)));
}
#endif

}  // namespace

bool mpi_built_in() {
#ifdef PAYLESS_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK") ||
         std::getenv("PMI_RANK");
}

int launcher_world_size() {
  int n = env_int("OMPI_COMM_WORLD_SIZE");
  if (n <= 0) n = env_int("PMI_SIZE");
  return std::max(n, 1);
}

DistributedSession::DistributedSession(double timeout_seconds) {
  PAYLESS_ASSERT(!group.mpi && !watchdog);  // one session per process
  if (!std::isfinite(timeout_seconds) || timeout_seconds < 0)
    fail("the MPI timeout must be a number of seconds >= 0 (0 = wait forever), got ", timeout_seconds);
#ifdef PAYLESS_HAVE_MPI
  if (!launched_by_mpirun()) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    fail("MPI_Init_thread failed: cannot join the ranks started by mpirun");
  group.mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &group.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &group.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &group.local_size);
  MPI_Comm_free(&local);
  watchdog = new Watchdog(timeout_seconds);
#else
  if (launcher_world_size() > 1)
    fail("started by mpirun as one of ", launcher_world_size(),
         " processes, but this payless was built without MPI: install libopenmpi-dev, configure again "
         "(cmake finds MPI and enables PAYLESS_MPI) and rebuild, or run without mpirun");
#endif
}

DistributedSession::~DistributedSession() {
#ifdef PAYLESS_HAVE_MPI
  if (!group.mpi) return;
  barrier();  // MPI_Finalize waits for every rank too; arrive here under the watchdog's eye
  delete watchdog;
  watchdog = nullptr;
  MPI_Finalize();
  group = Group();
#endif
}

int world_rank() { return group.rank; }
int world_size() { return group.size; }
int local_world_size() { return group.local_size; }

void all_reduce_sum(float* data, int64_t count) {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  Watched w("all_reduce_sum(float)");
  in_pieces(count, [&](int64_t at, int n) {
    MPI_Allreduce(MPI_IN_PLACE, data + at, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  });
#else
  (void)data, (void)count;
#endif
}

void all_reduce_sum(double* data, int64_t count) {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  Watched w("all_reduce_sum(double)");
  in_pieces(count, [&](int64_t at, int n) {
    MPI_Allreduce(MPI_IN_PLACE, data + at, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  });
#else
  (void)data, (void)count;
#endif
}

void broadcast(float* data, int64_t count) {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  Watched w("broadcast(float)");
  in_pieces(count, [&](int64_t at, int n) { MPI_Bcast(data + at, n, MPI_FLOAT, 0, MPI_COMM_WORLD); });
#else
  (void)data, (void)count;
#endif
}

void broadcast(int64_t* data, int64_t count) {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  Watched w("broadcast(int64)");
  in_pieces(count, [&](int64_t at, int n) { MPI_Bcast(data + at, n, MPI_INT64_T, 0, MPI_COMM_WORLD); });
#else
  (void)data, (void)count;
#endif
}

void broadcast(std::string& text) {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  int64_t size = static_cast<int64_t>(text.size());
  broadcast(&size, 1);
  text.resize(static_cast<size_t>(size));
  Watched w("broadcast(bytes)");
  in_pieces(size, [&](int64_t at, int n) { MPI_Bcast(&text[at], n, MPI_CHAR, 0, MPI_COMM_WORLD); });
#else
  (void)text;
#endif
}

bool broadcast_flag(bool flag) {
  int64_t value = flag ? 1 : 0;
  broadcast(&value, 1);
  return value != 0;
}

void barrier() {
  if (group.size == 1) return;
#ifdef PAYLESS_HAVE_MPI
  Watched w("barrier");
  MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void check_same_on_all_ranks(const std::string& what, const std::string& value, const std::string& hint) {
  if (group.size == 1) return;
  std::string root_value = value;
  broadcast(root_value);
  if (root_value == value) return;
  // Long values (a config's JSON) are shown around their first difference.
  size_t first = 0;
  while (first < value.size() && first < root_value.size() && value[first] == root_value[first]) ++first;
  const size_t from = first > 80 ? first - 80 : 0;
  auto excerpt = [from](const std::string& s) {
    return (from > 0 ? "..." : "") + s.substr(from, 200) + (s.size() > from + 200 ? "..." : "");
  };
  fail("rank ", group.rank, "'s ", what, " differs from rank 0's:\n  rank 0: ", excerpt(root_value), "\n  rank ",
       group.rank, ": ", excerpt(value), "\n", hint);
}

void abort_all(const std::string& message) {
  std::fflush(stdout);
  // Most errors (a bad config, a diverged run) strike every rank at once. Rank 0 speaks first and
  // its MPI_Abort ends the others, so the user reads the message once; another rank speaks only if
  // it is still running a moment later, i.e. if the error was its own.
  if (group.mpi && group.rank != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::fprintf(stderr, "payless (rank %d of %d): %s\n", group.rank, group.size, message.c_str());
  std::fflush(stderr);
#ifdef PAYLESS_HAVE_MPI
  if (group.mpi) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::_Exit(1);
}

}  // namespace payless
