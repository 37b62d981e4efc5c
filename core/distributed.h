// Data-parallel communication: the few collective operations that training on several processes
// (and machines) needs, on top of MPI -- never a network layer of our own.
//
// The model: N processes ("ranks", 0..N-1) started together by `mpirun -np N payless ...` each
// hold a full copy of the model. Rank 0 is the one that talks to the user and writes files.
// A process started without an MPI launcher is a group of one, and then every operation here
// is free: an all-reduce of one process leaves the buffer as it is, a broadcast does nothing. So
// the callers (models/trainer.cpp, apps/train.cpp) are written once, for any N.
//
// MPI is started only when the process was launched by mpirun (its environment says so): a plain
// `payless train` never touches MPI, costs nothing and behaves exactly as without MPI support.
// Builds without MPI (cmake found none, or -DPAYLESS_MPI=OFF) keep these functions, as the group
// of one; started by mpirun with N > 1 they refuse with an error that says how to rebuild.
//
// Failure: a collective waits for every rank. If a rank dies (crash, kill), mpirun stops the
// others. If a rank hangs or a machine disappears without the runtime noticing, a watchdog ends
// this process after `timeout_seconds` in one collective, with a message naming the operation,
// and mpirun then stops the rest. A rank that meets a payless::Error calls abort_all(), which
// prints the message and makes MPI stop every rank (MPI_Abort).
//
// Not here: what is reduced and when (models/trainer.cpp: one flat gradient buffer per update),
// the command-line side (apps/train.cpp), how to launch on several machines (README, docs/scaling.md).
#pragma once

#include <cstdint>
#include <string>

namespace payless {

// True when this build can talk MPI (PAYLESS_HAVE_MPI at compile time).
bool mpi_built_in();

// True when an MPI launcher started this process (its environment says so). Such a process's
// stdout is never the user's terminal, even when isatty() says so: mpirun forwards it.
bool launched_by_mpirun();

// The launcher's word on how many ranks there are, read from the environment (OpenMPI's
// OMPI_COMM_WORLD_SIZE, or the PMI/PMIx variables of other launchers); 1 without a launcher.
int launcher_world_size();

// Starts the process group for as long as it lives (MPI_Init_thread .. MPI_Finalize), if the
// process was launched by mpirun; otherwise a group of one. One per process, on the main thread,
// before any other function here. Only the main thread may call the collectives below.
class DistributedSession {
 public:
  // timeout_seconds: the longest a rank waits inside one collective before it gives up on the
  // others (0 = wait forever).
  explicit DistributedSession(double timeout_seconds = 600);
  ~DistributedSession();
  DistributedSession(const DistributedSession&) = delete;
  DistributedSession& operator=(const DistributedSession&) = delete;
};

int world_rank();        // 0..world_size()-1
int world_size();        // N
int local_world_size();  // ranks on this machine (they share its cores)
inline bool is_root() { return world_rank() == 0; }

// Element-wise sum over all ranks, in place: afterwards every rank holds the same sums.
void all_reduce_sum(float* data, int64_t count);
void all_reduce_sum(double* data, int64_t count);

// Rank 0's values replace everyone else's.
void broadcast(float* data, int64_t count);
void broadcast(int64_t* data, int64_t count);
void broadcast(std::string& text);
// Rank 0's flag, e.g. "the time budget is spent": decided once, obeyed by all.
bool broadcast_flag(bool flag);

// Waits until every rank has arrived.
void barrier();

// Throws payless::Error on every rank whose `value` differs from rank 0's: the message names
// `what`, shows both (shortened) and ends with `hint`. For what must agree across ranks: configs,
// data checksums, parameters.
void check_same_on_all_ranks(const std::string& what, const std::string& value, const std::string& hint);

// Prints "payless (rank r of N): <message>" on stderr and stops every rank with exit code 1.
// In a group of one: prints and exits.
[[noreturn]] void abort_all(const std::string& message);

}  // namespace payless
