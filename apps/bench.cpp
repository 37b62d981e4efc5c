// payless bench: measured speed of the pieces, printed as a table and as JSON lines.
//
// Workloads (definitions in docs/benchmarks.md):
//   ops   - matmul at the shapes of a d=512 model, through our op and straight through
//           cblas_sgemm, against the single-core FMA peak measured right here.
// Times are the median of several repetitions after a warm-up; compare ratios from one run,
// since absolute times on a shared machine are noisy.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace payless {
namespace {

using Clock = std::chrono::steady_clock;

// Median seconds of `reps` runs of f after one warm-up run.
template <typename F>
double median_seconds(int reps, F f) {
  f();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    auto start = Clock::now();
    f();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Single-core fp32 FMA peak: 12 independent accumulator chains hide the FMA latency (4 cycles ×
// 2 pipes on Zen 4), so the loop runs at the issue rate of the vector FMA units.
double measure_fma_peak_gflops() {
  const int64_t iterations = 20'000'000;
#if defined(__AVX512F__)
  constexpr int kLanes = 16;
  using Vec = __m512;
  auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
  auto set1 = [](float v) { return _mm512_set1_ps(v); };
  auto reduce = [](Vec v) { return _mm512_reduce_add_ps(v); };
#else
  constexpr int kLanes = 8;
  using Vec = __m256;
  auto fma = [](Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); };
  auto set1 = [](float v) { return _mm256_set1_ps(v); };
  auto reduce = [](Vec v) {
    alignas(32) float f[8];
    _mm256_store_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
  };
#endif
  float sink = 0;
  double seconds = median_seconds(3, [&] {
    Vec acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = set1(0.001f * j);
    const Vec a = set1(0.999999f), b = set1(1e-7f);
    for (int64_t i = 0; i < iterations; ++i)
      for (int j = 0; j < 12; ++j) acc[j] = fma(acc[j], a, b);
    for (int j = 0; j < 12; ++j) sink += reduce(acc[j]);
  });
  if (sink == 12345.0f) std::puts("");  // keeps the loop from being optimised away
  return 2.0 * kLanes * 12 * iterations / seconds / 1e9;
}

struct MatmulShape {
  const char* what;
  int64_t m, k, n;
  bool trans_a, trans_b;
};

int bench_ops(int threads) {
  const double peak = measure_fma_peak_gflops();
  std::printf("single-core fp32 FMA peak (measured): %.1f GFLOP/s; threads: %d\n\n", peak, threads);
  std::printf("%-34s %10s %10s %9s %12s\n", "matmul (M x K x N)", "payless", "sgemm", "ratio",
              "payless/peak");
  nlohmann::json peak_line = {{"bench", "ops"}, {"op", "fma_peak"}, {"gflops", peak}};
  std::printf("%s\n", peak_line.dump().c_str());

  // The GEMMs of one d=512 model layer at 4096 tokens: projections (512→512), FFN (512→2048),
  // output (512→10000); then the two backward GEMMs of a projection (transposed operands).
  const std::vector<MatmulShape> shapes = {
      {"x·Wᵀ 4096x512x512", 4096, 512, 512, false, true},
      {"x·Wᵀ 4096x512x2048", 4096, 512, 2048, false, true},
      {"x·Wᵀ 4096x512x10000", 4096, 512, 10000, false, true},
      {"dY·W 4096x2048x512", 4096, 2048, 512, false, false},
      {"dYᵀ·X 2048x4096x512", 2048, 4096, 512, true, false},
  };
  NoGrad no_grad;
  for (const MatmulShape& s : shapes) {
    Tensor a = Tensor::empty(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k});
    Tensor b = Tensor::empty(s.trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n});
    Rng rng(1);
    rng.uniform_(a, -1, 1);
    rng.uniform_(b, -1, 1);
    Tensor c = Tensor::empty({s.m, s.n});
    const double flops = 2.0 * s.m * s.n * s.k;
    double ours = median_seconds(5, [&] { c = matmul(a, b, s.trans_a, s.trans_b); });
    double direct = median_seconds(5, [&] {
      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                  s.trans_b ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f, a.data(),
                  s.trans_a ? s.m : s.k, b.data(), s.trans_b ? s.k : s.n, 0.0f, c.data(), s.n);
    });
    double g_ours = flops / ours / 1e9, g_direct = flops / direct / 1e9;
    std::printf("%-34s %10.1f %10.1f %8.2fx %11.0f%%\n", s.what, g_ours, g_direct, g_ours / g_direct,
                100.0 * g_ours / (peak * threads));
    nlohmann::json line = {{"bench", "ops"},       {"op", "matmul"},      {"m", s.m},
                           {"k", s.k},             {"n", s.n},            {"trans_a", s.trans_a},
                           {"trans_b", s.trans_b}, {"gflops", g_ours},    {"sgemm_gflops", g_direct},
                           {"threads", threads},   {"peak_gflops", peak}};
    std::printf("%s\n", line.dump().c_str());
  }
  return 0;
}

int run_bench(cli::Args& args) {
  const int64_t threads = args.get_int("threads", 1, "threads for OpenMP and OpenBLAS together");
  std::vector<std::string> what = args.positionals("WORKLOAD", "ops");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Measures speed. Workloads: ops (matmul vs sgemm vs FMA peak).").c_str());
    return 0;
  }
  args.finish();
  set_num_threads(static_cast<int>(threads));
  const std::string workload = what.empty() ? "ops" : what[0];
  if (workload == "ops") return bench_ops(static_cast<int>(threads));
  fail("unknown workload '", workload, "' (known: ops)");
}

cli::Command bench_command("bench", "measure speed: ops", run_bench);

}  // namespace
}  // namespace payless
