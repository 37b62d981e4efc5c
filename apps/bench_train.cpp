// payless bench train: one training step (forward, backward, Adam) on a fixed synthetic batch of
// 128 sentences × 32 target tokens (and 32 source tokens for mt), per selected model workload.
//
// Peak memory needs a process of its own: ru_maxrss only grows, so the second workload in a
// process would report the first one's peak. The parent therefore re-runs this program
// (/proc/self/exe) with --child for each workload and collects the JSON line each child prints.
// Definitions and formulas: docs/benchmarks.md. The PyTorch twin: bench/torch_reference.py.
#include <cstdio>
#include <cstdlib>

#include "apps/bench.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "optim/adam.h"

namespace payless::bench {
namespace {

// The training workload in this process; returns its JSON line.
nlohmann::json train_in_this_process(const ModelWorkload& w, const Options& o) {
  const double base_rss = current_rss_mb();
  const ModelConfig config = workload_model_config(w);
  const int64_t S = w.task == "mt" ? kTrainSourceLen : 0;
  std::unique_ptr<SequenceModel> model = build_model(config, 1);
  model->train();
  AdamOptions adam_options;
  adam_options.lr = 5e-4;
  adam_options.beta1 = 0.9;
  adam_options.beta2 = 0.98;
  Adam adam(model->named_parameters(), adam_options);
  const Batch batch = synthetic_batch(config, kTrainBatch, S, kTrainTargetLen, 7);
  const float per_token = 1.0f / static_cast<float>(batch.target_tokens);

  double loss_value = 0;
  auto step = [&] {
    // The trainer's update without its bookkeeping: the summed label-smoothed loss normalised
    // by the token count, backward, Adam, gradients dropped.
    CrossEntropyResult r = model->loss(batch, 0.1f, SmoothingVariant::kPaper);
    Tensor loss = scale(r.loss, per_token);
    loss_value = loss.item();
    backward(loss);
    adam.step();
    adam.zero_grad();
  };
  const int warmup = o.warmup >= 0 ? o.warmup : 2, reps = o.reps >= 0 ? o.reps : 5;
  const double seconds = median_seconds(warmup, reps, step);
  const FlopCount flops = count_forward_flops(config, kTrainBatch, S, kTrainTargetLen);
  const double peak = peak_rss_mb();
  return {{"bench", "train"},
          {"impl", "payless"},
          {"workload", w.name()},
          {"config", w.config},
          {"task", w.task},
          {"arch", w.arch},
          {"threads", o.threads},
          {"batch", kTrainBatch},
          {"source_len", S},
          {"target_len", kTrainTargetLen},
          {"target_tokens", batch.target_tokens},
          {"params", model->num_parameters()},
          {"ms_per_step", seconds * 1e3},
          {"tokens_per_s", batch.target_tokens / seconds},
          {"gflop_per_step", flops.train() / 1e9},
          {"gflop_matmul_fwd", flops.matmul / 1e9},
          {"gflop_conv_fwd", flops.conv / 1e9},
          {"gflops", flops.train() / seconds / 1e9},
          {"loss", loss_value},
          {"peak_rss_mb", peak},
          {"base_rss_mb", base_rss},
          {"peak_delta_mb", peak - base_rss},
          {"warmup", warmup},
          {"reps", reps},
          {"load", load_average()}};
}

}  // namespace

// The environment a measured child gets: both thread counts set, and passive OpenMP waiting (a
// spinning idle thread would steal the core from OpenBLAS's own threads) unless the caller chose.
std::string child_environment(int threads) {
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  const std::string n = std::to_string(threads);
  return "OMP_NUM_THREADS=" + n + " OPENBLAS_NUM_THREADS=" + n +
         " OMP_WAIT_POLICY=" + (wait ? wait : "PASSIVE") + " ";
}

// One training workload in a fresh child process; returns its JSON line.
nlohmann::json train_in_child(const ModelWorkload& w, const Options& o) {
  Options one = o;
  one.selection.configs = {w.config};
  one.selection.tasks = {w.task};
  one.selection.archs = {w.arch};
  const std::string command =
      child_environment(o.threads) + "'" + self_exe() + "' bench train --child" + child_arguments(one);
  std::vector<nlohmann::json> lines = json_lines(run_capture(command));
  if (lines.size() != 1) fail("bench train: the child for ", w.name(), " printed ", lines.size(), " JSON lines, expected 1");
  return lines[0];
}

void print_train_table(const std::vector<nlohmann::json>& rows) {
  std::printf("\n%-24s %8s %10s %10s %9s %8s %9s %9s\n", "train workload", "params", "ms/step",
              "tok/s", "GFLOP", "GFLOP/s", "peak MB", "delta MB");
  for (const nlohmann::json& r : rows)
    std::printf("%-24s %7.2fM %10.1f %10.0f %9.1f %8.1f %9.0f %9.0f\n",
                r["workload"].get<std::string>().c_str(), r["params"].get<double>() / 1e6,
                r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(),
                r["gflop_per_step"].get<double>(), r["gflops"].get<double>(),
                r["peak_rss_mb"].get<double>(), r["peak_delta_mb"].get<double>());
  std::printf("GFLOP per step = 3 × forward (GEMMs 2·M·N·K + conv 2·B·T·C·K); peak MB = ru_maxrss of a "
              "fresh process, delta = peak minus RSS before the model was built\n");
}

int bench_train(const Options& o) {
  const std::vector<ModelWorkload> workloads = o.selection.workloads();
  if (o.child) {
    if (workloads.size() != 1) fail("bench train --child runs exactly one workload, got ", workloads.size());
    emit(train_in_this_process(workloads[0], o));
    return 0;
  }
  std::vector<nlohmann::json> rows;
  for (const ModelWorkload& w : workloads) {
    rows.push_back(train_in_child(w, o));
    emit(rows.back());
  }
  if (!o.quiet) print_train_table(rows);
  return 0;
}

}  // namespace payless::bench
