// What the `payless bench` workloads share: timing, selection of workloads, the benchmark model
// configurations, FLOP counts, memory readings and output (JSON lines plus a readable table).
//
// The workloads themselves are one file each: apps/bench.cpp (the command and `ops`),
// apps/bench_train.cpp, apps/bench_decode.cpp, apps/bench_layer.cpp and apps/bench_compare.cpp
// (payless against bench/torch_reference.py, interleaved). Their definitions, the FLOP formulas
// and results are in docs/benchmarks.md.
// What this is not: a test. Nothing here checks numbers; the tests do that.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/sequence_model.h"

namespace payless::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The median of a non-empty list (the upper one of an even count).
inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of `reps` runs of f after `warmup` untimed runs. The median, not the mean: a
// colleague's compiler stealing the core for a moment moves the mean, rarely the median.
template <typename F>
double median_seconds(int warmup, int reps, F f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> times;
  for (int r = 0; r < std::max(reps, 1); ++r) {
    auto start = Clock::now();
    f();
    times.push_back(seconds_since(start));
  }
  return median_of(std::move(times));
}

// ---- Workload selection -------------------------------------------------------------------------

// One model workload: config "tiny" | "small" | "iwslt", task "lm" | "mt",
// arch "transformer" | "lightweight" | "dynamic".
struct ModelWorkload {
  std::string config, task, arch;
  std::string name() const { return config + "/" + task + "/" + arch; }
};

// --config/--task/--arch lists ("tiny,small", "lm", "dynamic,lightconv"); aliases lightconv ->
// lightweight and dynamicconv -> dynamic are accepted. Unknown names are errors naming the option.
struct Selection {
  std::vector<std::string> configs, tasks, archs;
  std::vector<ModelWorkload> workloads() const;  // configs × tasks × archs, in that nesting
};
Selection parse_selection(const std::string& configs, const std::string& tasks, const std::string& archs);
std::vector<std::string> split_list(const std::string& list);

// The fixed synthetic training batch: 128 sentences × 32 target tokens (× 32 source tokens for mt).
constexpr int64_t kTrainBatch = 128, kTrainTargetLen = 32, kTrainSourceLen = 32;

// The model of a workload (docs/benchmarks.md §Configurations): d, layers, heads, FFN, vocabulary
// and kernel widths from the config; no GLU; dropout 0.1, attention dropout 0.1, weight dropout
// (DropConnect) 0.1, no input or ReLU dropout; lm = the decoder stack, pre-norm, tied output
// embedding; mt = encoder + decoder, post-norm, decoder output tied to its input embedding.
ModelConfig workload_model_config(const ModelWorkload& w);

// Token ids uniform in [4, V) from a fixed seed; targets end with </s>, decoder input is the target
// shifted right behind </s>, sources (mt) end with </s>. No padding anywhere.
Batch synthetic_batch(const ModelConfig& config, int64_t B, int64_t S, int64_t T, uint64_t seed);

// ---- FLOPs (docs/benchmarks.md §FLOPs) ---------------------------------------------------------

// Forward FLOPs of one teacher-forced pass: every GEMM counted as 2·M·N·K (projections, FFN,
// DynamicConv's kernel generator, attention scores and weighted sums over the full T×S, output
// layer), the conv ops as 2·B·T·C·K (spec §3.4: n·d·K MACs). Training counts 3× this: backward is
// 2× forward for the GEMMs and 2·n·d·K MACs for the conv ops (spec §3.4). Softmax, LayerNorm,
// dropout, embeddings, the loss and Adam are not counted.
struct FlopCount {
  double matmul = 0;  // forward
  double conv = 0;    // forward
  double forward() const { return matmul + conv; }
  double train() const { return 3.0 * forward(); }
};
FlopCount count_forward_flops(const ModelConfig& config, int64_t B, int64_t S, int64_t T);

// ---- Machine and process ------------------------------------------------------------------------

double current_rss_mb();  // VmRSS now
double peak_rss_mb();     // getrusage ru_maxrss: the peak over the whole process
double load_average();    // 1-minute load from /proc/loadavg
// Seconds of one pass summing the n floats at p (n a multiple of 64) with `threads` threads (set
// as the thread count if it is not already): how fast memory delivers a stream that is only
// read, as the weights of a batch-1 decoding step are.
double read_pass_seconds(const float* p, int64_t n, int threads);
std::string self_exe();   // absolute path of this program (readlink /proc/self/exe)

// Runs a shell command and returns its stdout; throws (naming the command) if it cannot start or
// exits non-zero. stderr passes through.
std::string run_capture(const std::string& command);
// The JSON objects among the lines of `text` (lines starting with '{'); other lines are ignored.
std::vector<nlohmann::json> json_lines(const std::string& text);

// Prints one JSON line on stdout (flushed, so that a parent reading a pipe sees it at once).
void emit(const nlohmann::json& line);

// Common options of every workload.
struct Options {
  int threads = 1;
  int warmup = -1;  // < 0: the workload's default
  int reps = -1;    // < 0: the workload's default
  Selection selection;
  std::vector<int64_t> lengths;  // layer bench: T values
  std::vector<int64_t> batches;  // decode bench: batch sizes
  std::string svg;               // layer bench: chart path, "" for none
  bool child = false;            // train: run the selected single workload in this process
  bool quiet = false;            // JSON lines only, no table
  int rounds = 1;                // compare: how many times each workload pair runs
};

int bench_ops(const Options& options);
int bench_train(const Options& options);
int bench_decode(const Options& options);
int bench_layer(const Options& options);
// kind: "train", "decode", "layer" or "ops"; runs payless and PyTorch alternately per workload.
int bench_compare(const Options& options, const std::string& kind, const std::string& python,
                  const std::string& torch_script);

// The environment of a measured child process: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = threads,
// OMP_WAIT_POLICY as the caller has it, else PASSIVE. A prefix for a shell command line.
std::string child_environment(int threads);
// One training workload in a fresh `payless bench train --child` process; its JSON line.
nlohmann::json train_in_child(const ModelWorkload& w, const Options& options);

// Layer bench output: the time-vs-T chart of JSON rows {impl, block, T, ms}, and the table of one
// impl's rows (ms, conv/attention ratio, growth per doubling of T).
void write_layer_svg(const std::string& path, const std::vector<nlohmann::json>& rows);
void print_layer_table(const std::vector<nlohmann::json>& rows, const std::string& impl);

// The options that reproduce `options` on a child command line (threads, selection, reps...).
std::string child_arguments(const Options& options);

}  // namespace payless::bench
