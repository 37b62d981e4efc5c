// payless bench: measured speed of the pieces and of whole models, printed as JSON lines and as a
// readable table.
//
// Workloads (precise definitions and results in docs/benchmarks.md):
//   ops     - the machine (FMA peak, STREAM-like copy/triad bandwidth), matmul through our op and
//             straight through cblas_sgemm, gemm's small-M path against sgemm at decoding
//             shapes, and the other hot kernels (softmax, LayerNorm,
//             cross-entropy, both convolutions) as GFLOP/s or GB/s against those two ceilings.
//   train   - forward + backward + Adam on a fixed synthetic batch (apps/bench_train.cpp).
//   decode  - greedy (and beam 4 for mt) incremental decoding of 50 tokens (apps/bench_decode.cpp).
//   layer   - one conv block vs one self-attention sublayer as T grows (apps/bench_layer.cpp).
//   compare - any of the above against bench/torch_reference.py, interleaved (apps/bench_compare.cpp).
// Times are the median of several repetitions after a warm-up; compare ratios from one run,
// since absolute times on a shared machine are noisy.
#include <sys/mman.h>

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "apps/bench.h"
#include "apps/cli.h"
#include "core/autograd.h"
#include "core/kernels/conv.h"
#include "core/kernels/matmul.h"
#include "core/kernels/norm.h"
#include "core/kernels/softmax.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace payless::bench {
namespace {

// fp32 FMA peak of `threads` cores running at once: on each, 12 independent accumulator chains
// hide the FMA latency (4 cycles × 2 pipes on Zen 4), so the loop runs at the issue rate of the
// vector FMA units. Run with 1 thread and with all of them: if the second number is not `threads`
// times the first, the cores share FMA units (SMT siblings of a virtual machine) or are busy with
// someone else's work, and no code can scale past that.
double measure_fma_peak_gflops(int threads) {
  const int64_t iterations = 20'000'000;
#if defined(__AVX512F__)
  constexpr int kLanes = 16;
  using Vec = __m512;
  auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
  auto set1 = [](float v) { return _mm512_set1_ps(v); };
  auto reduce = [](Vec v) {  // a plain sum: GCC 12 warns inside _mm512_reduce_add_ps
    alignas(64) float f[16];
    _mm512_store_ps(f, v);
    float s = 0;
    for (float x : f) s += x;
    return s;
  };
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
  std::vector<float> sink(threads, 0.0f);
  double seconds = median_seconds(1, 3, [&] {
#pragma omp parallel num_threads(threads)
    {
      Vec acc[12];
      for (int j = 0; j < 12; ++j) acc[j] = set1(0.001f * j);
      const Vec a = set1(0.999999f), b = set1(1e-7f);
      for (int64_t i = 0; i < iterations; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = fma(acc[j], a, b);
      float s = 0;
      for (int j = 0; j < 12; ++j) s += reduce(acc[j]);
      sink[omp_get_thread_num()] += s;
    }
  });
  for (float s : sink)
    if (s == 12345.0f) std::puts("");  // keeps the loop from being optimised away
  return 2.0 * kLanes * 12 * iterations * threads / seconds / 1e9;
}

// STREAM-like bandwidth over arrays far larger than the caches (3 × 128 MB tensors, which are on
// 2 MiB pages like every tensor buffer from 2 MiB up), with the given threads. Bytes counted as
// STREAM does: copy moves 2 arrays (read a, write c), triad 3 (read b, c, write a); no
// write-allocate traffic. This is measurement code, not an engine kernel, so it carries its own
// OpenMP loops.
// Read: the sum of the 128 MB array, the access of a batch-1 decoding step (every weight read
// once, little written), once on ordinary 4 KiB pages and once on 2 MiB pages, where a built
// model's parameters live (pack_storages): on this machine the second reads about 1.6x as fast.
struct Bandwidth {
  double copy_gbs, triad_gbs, read_gbs, read_huge_gbs;
};
double measure_read_gbs(const float* p, int64_t n, int threads) {
  const double seconds = median_seconds(1, 7, [&] { read_pass_seconds(p, n, threads); });
  return 4.0 * n / seconds / 1e9;
}

// The read on 4 KiB pages: an array mapped here and marked MADV_NOHUGEPAGE, since tensor
// buffers this large are themselves on 2 MiB pages (core/tensor.cpp).
double measure_read_gbs_small_pages(int64_t n, int threads) {
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("bench ops: cannot map ", bytes, " bytes");
#ifdef MADV_NOHUGEPAGE
  madvise(m, bytes, MADV_NOHUGEPAGE);
#endif
  float* p = static_cast<float*>(m);
  std::fill(p, p + n, 1.0f);
  const double gbs = measure_read_gbs(p, n, threads);
  munmap(m, bytes);
  return gbs;
}

Bandwidth measure_bandwidth(int threads) {
  const int64_t n = 32 * 1024 * 1024;
  Tensor a = Tensor::full({n}, 1.0f), b = Tensor::full({n}, 2.0f), c = Tensor::zeros({n});
  float *pa = a.data(), *pb = b.data(), *pc = c.data();
  const float s = 0.5f;
  double copy = median_seconds(1, 5, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) pc[i] = pa[i];
  });
  double triad = median_seconds(1, 5, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
  });
  const double bytes = 4.0 * n;
  const double read = measure_read_gbs_small_pages(n, threads);
  pack_storages({b});  // certain to be on 2 MiB pages, whatever the buffer's size
  const double read_huge = measure_read_gbs(b.data(), n, threads);
  return {2 * bytes / copy / 1e9, 3 * bytes / triad / 1e9, read, read_huge};
}

struct MatmulShape {
  const char* what;
  int64_t m, k, n;
  bool trans_a, trans_b;
};

// A table row for a kernel: its rate against the ceiling it is bound by.
void kernel_row(const char* what, const char* op, double seconds, double flops, double bytes,
                double peak_gflops, double bandwidth_gbs, int threads) {
  const double gflops = flops / seconds / 1e9, gbs = bytes / seconds / 1e9;
  std::printf("%-36s %9.3f %9.1f %7.0f%% %9.1f %7.0f%%\n", what, seconds * 1e3, gflops,
              100.0 * gflops / peak_gflops, gbs, 100.0 * gbs / bandwidth_gbs);
  emit({{"bench", "ops"}, {"impl", "payless"}, {"op", op}, {"what", what}, {"ms", seconds * 1e3},
        {"gflops", gflops}, {"gbs", gbs}, {"threads", threads}});
}

}  // namespace

int bench_ops(const Options& o) {
  const int threads = o.threads;
  const double peak1 = measure_fma_peak_gflops(1);
  const double peak_all = threads > 1 ? measure_fma_peak_gflops(threads) : peak1;
  const double peak = peak1 * threads;
  const Bandwidth bw = measure_bandwidth(threads);
  std::printf("fp32 FMA peak (measured, one core): %.1f GFLOP/s; × %d threads = %.1f; measured with %d "
              "threads at once: %.1f\n", peak1, threads, peak, threads, peak_all);
  std::printf("memory bandwidth (STREAM-like, %d threads): copy %.1f GB/s, triad %.1f GB/s; read %.1f GB/s "
              "(4 KiB pages), %.1f GB/s (2 MiB pages)\n",
              threads, bw.copy_gbs, bw.triad_gbs, bw.read_gbs, bw.read_huge_gbs);
  emit({{"bench", "ops"}, {"op", "fma_peak"}, {"gflops", peak1}, {"threads", 1}});
  emit({{"bench", "ops"}, {"op", "fma_peak_all_threads"}, {"gflops", peak_all}, {"threads", threads}});
  emit({{"bench", "ops"}, {"op", "stream"}, {"copy_gbs", bw.copy_gbs}, {"triad_gbs", bw.triad_gbs},
        {"read_gbs", bw.read_gbs}, {"read_huge_gbs", bw.read_huge_gbs}, {"threads", threads}});
  const double bandwidth = bw.triad_gbs;

  // The GEMMs of one d=512 model layer at 4096 tokens: projections (512→512), FFN (512→2048),
  // output (512→10000); then the two backward GEMMs of a projection (transposed operands). Then
  // the tiny config's (d=64, FFN 128, V 1000) and one of small's, where gemm takes its small-B
  // and small-C paths instead of sgemm (core/kernels/matmul.h).
  std::printf("\n%-34s %10s %10s %9s %12s\n", "matmul (M x K x N), GFLOP/s", "payless", "sgemm",
              "ratio", "payless/peak");
  const std::vector<MatmulShape> shapes = {
      {"x·Wᵀ 4096x512x512", 4096, 512, 512, false, true},
      {"x·Wᵀ 4096x512x2048", 4096, 512, 2048, false, true},
      {"x·Wᵀ 4096x512x10000", 4096, 512, 10000, false, true},
      {"dY·W 4096x2048x512", 4096, 2048, 512, false, false},
      {"dYᵀ·X 2048x4096x512", 2048, 4096, 512, true, false},
      {"x·Wᵀ 4096x64x64", 4096, 64, 64, false, true},
      {"x·Wᵀ 4096x64x128", 4096, 64, 128, false, true},
      {"x·Wᵀ 4096x64x1000", 4096, 64, 1000, false, true},
      {"dY·W 4096x64x64", 4096, 64, 64, false, false},
      {"dY·W 4096x1000x64", 4096, 1000, 64, false, false},
      {"dYᵀ·X 64x4096x64", 64, 4096, 64, true, false},
      {"dYᵀ·X 128x4096x64", 128, 4096, 64, true, false},
      {"dYᵀ·X 1000x4096x64", 1000, 4096, 64, true, false},
      {"x·Wᵀ 4096x256x256", 4096, 256, 256, false, true},
  };
  NoGrad no_grad;
  Rng rng(1);
  for (const MatmulShape& s : shapes) {
    Tensor a = Tensor::empty(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k});
    Tensor b = Tensor::empty(s.trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n});
    rng.uniform_(a, -1, 1);
    rng.uniform_(b, -1, 1);
    Tensor c = Tensor::empty({s.m, s.n});
    const double flops = 2.0 * s.m * s.n * s.k;
    double ours = median_seconds(1, 5, [&] { c = matmul(a, b, s.trans_a, s.trans_b); });
    double direct = median_seconds(1, 5, [&] {
      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                  s.trans_b ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f, a.data(),
                  s.trans_a ? s.m : s.k, b.data(), s.trans_b ? s.k : s.n, 0.0f, c.data(), s.n);
    });
    double g_ours = flops / ours / 1e9, g_direct = flops / direct / 1e9;
    std::printf("%-34s %10.1f %10.1f %8.2fx %11.0f%%\n", s.what, g_ours, g_direct, g_ours / g_direct,
                100.0 * g_ours / peak);
    emit({{"bench", "ops"},       {"impl", "payless"},   {"op", "matmul"},     {"what", s.what},
          {"m", s.m},             {"k", s.k},            {"n", s.n},           {"trans_a", s.trans_a},
          {"trans_b", s.trans_b}, {"gflops", g_ours},    {"sgemm_gflops", g_direct},
          {"ms", ours * 1e3},     {"threads", threads},  {"peak_gflops", peak1}});
  }

  // Few-row products of a decoding step, x (M, K) · Wᵀ with W (N, K): gemm's two paths side by
  // side (core/kernels/matmul.h; the small-M path is taken for M <= kSmallGemmMaxRows and
  // M·N·K > kSmallGemmMinWork), in µs, the best of 21 after 3 warm-up calls (decoding steps are
  // short; the best shows the path, the median mostly the neighbours' load). N x K: the
  // projections, FFN and output layer of small (d 256, V 8000) and iwslt (d 512, V 10000).
  {
    std::printf("\n%-28s", "x·Wᵀ small-M, µs: N x K \\ M");
    const int64_t Ms[] = {1, 4, 16, 32, 64, 128};
    for (int64_t M : Ms) std::printf(" %17lld", static_cast<long long>(M));
    std::printf("\n%-28s", "");
    for (size_t i = 0; i < std::size(Ms); ++i) std::printf(" %17s", "small-M / sgemm");
    std::printf("\n");
    const int64_t nk[][2] = {{256, 256}, {512, 256}, {8000, 256}, {512, 512}, {1024, 512}, {10000, 512}};
    auto best_us = [](const std::function<void()>& f) {
      for (int r = 0; r < 3; ++r) f();
      double best = 1e30;
      for (int r = 0; r < 21; ++r) best = std::min(best, median_seconds(0, 1, f));
      return best * 1e6;
    };
    for (const auto& s : nk) {
      const int64_t N = s[0], K = s[1];
      Tensor w = Tensor::empty({N, K}), x = Tensor::empty({128, K}), y = Tensor::empty({128, N});
      rng.uniform_(w, -1, 1);
      rng.uniform_(x, -1, 1);
      std::string row = std::to_string(N) + " x " + std::to_string(K);
      row.resize(28, ' ');
      std::vector<nlohmann::json> lines;  // emitted after the row, so the table stays readable
      for (int64_t M : Ms) {
        const double small = best_us([&] {
          kernels::gemm_small_m_path(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
        });
        const double blas = best_us([&] {
          kernels::gemm_blas(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
        });
        char cell[32];
        std::snprintf(cell, sizeof cell, " %8.1f/%8.1f", small, blas);
        row += cell;
        lines.push_back({{"bench", "ops"}, {"impl", "payless"}, {"op", "small_m_gemm"}, {"m", M},
                         {"n", N}, {"k", K}, {"small_m_us", small}, {"sgemm_us", blas},
                         {"threads", threads},
                         {"taken", kernels::gemm_uses_small_m_path(false, M, N, K) ? "small_m" : "sgemm"}});
      }
      std::printf("%s\n", row.c_str());
      for (const nlohmann::json& l : lines) emit(l);
    }
  }

  // The other hot kernels at the shapes of the iwslt training step: 4096 rows of d=512 or of the
  // V=10000 logits, and the convolutions at B=8, T=1024, C=512, H=4, K=31 (centred).
  std::printf("\n%-36s %9s %9s %8s %9s %8s\n", "kernel", "ms", "GFLOP/s", "%peak", "GB/s", "%triad");
  const int64_t rows = 4096, V = 10000, C = 512;
  {
    Tensor x = Tensor::empty({rows, V}), y = Tensor::empty({rows, V}), dx = Tensor::zeros({rows, V});
    rng.uniform_(x, -4, 4);
    const double t = median_seconds(1, 5, [&] { kernels::softmax_rows(x.data(), y.data(), rows, V); });
    kernel_row("softmax 4096x10000 (fwd)", "softmax", t, 0, 2.0 * 4 * rows * V, peak, bandwidth, threads);
    const double tb = median_seconds(1, 5, [&] {
      kernels::softmax_backward_rows(y.data(), x.data(), dx.data(), rows, V);
    });
    kernel_row("softmax 4096x10000 (bwd)", "softmax_backward", tb, 0, 4.0 * 4 * rows * V, peak,
               bandwidth, threads);
    std::vector<int32_t> targets(rows);
    for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>((r * 7919) % V);
    std::vector<float> loss(rows), nll(rows), lse(rows);
    const kernels::SmoothingWeights w{0.9f, 0.1f / V};
    const double tc = median_seconds(1, 5, [&] {
      kernels::cross_entropy_rows(x.data(), targets.data(), rows, V, -1, w, loss.data(), nll.data(),
                                  lse.data());
    });
    kernel_row("cross-entropy 4096x10000 (fwd)", "cross_entropy", tc, 0, 4.0 * rows * V, peak,
               bandwidth, threads);
    const double tcb = median_seconds(1, 5, [&] {
      kernels::cross_entropy_backward_rows(x.data(), targets.data(), lse.data(), rows, V, -1, w,
                                           1.0f, dx.data());
    });
    kernel_row("cross-entropy 4096x10000 (bwd)", "cross_entropy_backward", tcb, 0, 3.0 * 4 * rows * V,
               peak, bandwidth, threads);
  }
  {
    Tensor x = Tensor::empty({rows, C}), y = Tensor::empty({rows, C}), dx = Tensor::zeros({rows, C});
    Tensor gamma = Tensor::ones({C}), beta = Tensor::zeros({C});
    Tensor dgamma = Tensor::zeros({C}), dbeta = Tensor::zeros({C});
    std::vector<float> mean(rows), rstd(rows);
    rng.uniform_(x, -2, 2);
    const double t = median_seconds(1, 5, [&] {
      kernels::layer_norm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                  rstd.data(), rows, C, 1e-5f);
    });
    kernel_row("layer norm 4096x512 (fwd)", "layer_norm", t, 0, 2.0 * 4 * rows * C, peak, bandwidth, threads);
    const double tb = median_seconds(1, 5, [&] {
      kernels::layer_norm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), y.data(),
                                   dx.data(), dgamma.data(), dbeta.data(), rows, C);
    });
    kernel_row("layer norm 4096x512 (bwd)", "layer_norm_backward", tb, 0, 4.0 * 4 * rows * C, peak,
               bandwidth, threads);
  }
  {
    const int64_t B = 8, T = 1024, H = 4, K = 31, P = K / 2;
    Tensor x = Tensor::empty({B, T, C}), y = Tensor::empty({B, T, C}), gy = Tensor::empty({B, T, C});
    Tensor gx = Tensor::zeros({B, T, C}), a = Tensor::empty({B, T, H, K}), ga = Tensor::zeros({B, T, H, K});
    Tensor w = Tensor::empty({H, K}), gw = Tensor::zeros({H, K});
    rng.uniform_(x, -1, 1);
    rng.uniform_(gy, -1, 1);
    rng.uniform_(a, 0, 0.1f);
    rng.uniform_(w, 0, 0.1f);
    const double flops = 2.0 * B * T * C * K;  // spec §3.4: B·T·C·K multiply-adds
    const double act = 4.0 * B * T * C, weights = 4.0 * B * T * H * K;
    const double tdf = median_seconds(1, 5, [&] {
      kernels::dynamic_conv_forward(x.data(), a.data(), y.data(), B, T, C, H, K, P);
    });
    kernel_row("dynamic conv 8x1024x512 K31 (fwd)", "dynamic_conv", tdf, flops, 2 * act + weights,
               peak, bandwidth, threads);
    const double tdb = median_seconds(1, 5, [&] {
      kernels::dynamic_conv_backward(x.data(), a.data(), gy.data(), gx.data(), ga.data(), B, T, C, H, K, P);
    });
    kernel_row("dynamic conv 8x1024x512 K31 (bwd)", "dynamic_conv_backward", tdb, 2 * flops,
               4 * act + 3 * weights, peak, bandwidth, threads);
    const double tlf = median_seconds(1, 5, [&] {
      kernels::lightweight_conv_forward(x.data(), w.data(), y.data(), B, T, C, H, K, P);
    });
    kernel_row("lightweight conv 8x1024x512 K31 (fwd)", "lightweight_conv", tlf, flops, 2 * act,
               peak, bandwidth, threads);
    const double tlb = median_seconds(1, 5, [&] {
      kernels::lightweight_conv_backward(x.data(), w.data(), gy.data(), gx.data(), gw.data(), B, T, C, H, K, P);
    });
    kernel_row("lightweight conv 8x1024x512 K31 (bwd)", "lightweight_conv_backward", tlb, 2 * flops,
               4 * act, peak, bandwidth, threads);
  }
  std::printf("bytes counted: each array read or written once (accumulated outputs twice); "
              "conv FLOPs per spec §3.4 (2·B·T·C·K forward, twice that backward)\n");
  return 0;
}

namespace {

// A comma-separated list of positive whole numbers, for the option --`option`.
std::vector<int64_t> parse_positive_list(const std::string& list, const char* option) {
  std::vector<int64_t> out;
  for (const std::string& item : split_list(list)) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      fail("bench: --", option, " wants positive whole numbers separated by commas, got '", item, "'");
    }
  }
  if (out.empty()) fail("bench: --", option, " selects nothing (got '", list, "')");
  return out;
}

int run_bench(cli::Args& args) {
  Options o;
  o.threads = static_cast<int>(args.get_int("threads", 1, "threads for OpenMP and OpenBLAS together"));
  // Read one by one: the order of declaration is the order --help lists them in.
  const std::string configs =
      args.get("config", "tiny,small,iwslt", "train/decode: model sizes, comma-separated (tiny, small, iwslt)");
  const std::string tasks = args.get("task", "lm,mt", "train/decode: tasks (lm, mt)");
  const std::string archs = args.get("arch", "transformer,lightweight,dynamic",
                                     "train/decode: architectures (transformer, lightweight or lightconv, dynamic or dynamicconv)");
  o.selection = parse_selection(configs, tasks, archs);
  o.warmup = static_cast<int>(args.get_int("warmup", -1, "untimed runs first (default: per workload)"));
  o.reps = static_cast<int>(args.get_int("reps", -1, "timed runs, the median is reported (default: per workload)"));
  const std::string lengths = args.get("lengths", "64,128,256,512,1024,2048", "layer: sequence lengths T");
  const std::string batches = args.get("batches", "1,32", "decode: batch sizes");
  o.svg = args.get("svg", "", "layer/compare layer: write the time-vs-T chart (log-log) to this SVG file");
  o.rounds = static_cast<int>(args.get_int("rounds", 1, "compare: run each payless/PyTorch pair this many times "
                                            "(the median ratio is reported)"));
  o.quiet = args.flag("quiet", "JSON lines only, no table");
  o.child = args.flag("child", "internal: run the one selected training workload in this process");
  const std::string python = args.get("python", "/usr/bin/python3", "compare: the Python that has torch");
  const std::string torch_script = args.get("torch-script", "", "compare: path of bench/torch_reference.py "
                                            "(default: the one in the source tree this was built from)");
  std::vector<std::string> what = args.positionals("WORKLOAD [KIND]",
                                                   "ops, train, decode, layer, or compare KIND (KIND: one of the others)");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Measures speed (docs/benchmarks.md). Workloads: ops, train, decode, layer, "
                                 "compare {train,decode,layer,ops}.").c_str());
    return 0;
  }
  args.finish();
  if (o.threads < 1) fail("bench: --threads must be at least 1, got ", o.threads);
  o.lengths = parse_positive_list(lengths, "lengths");
  o.batches = parse_positive_list(batches, "batches");
  set_num_threads(o.threads);
  const std::string workload = what.empty() ? "ops" : what[0];
  if (workload != "compare" && what.size() > 1) fail("bench: only compare takes a second word, got '", what[1], "'");
  if (workload == "ops") return bench_ops(o);
  if (workload == "train") return bench_train(o);
  if (workload == "decode") return bench_decode(o);
  if (workload == "layer") return bench_layer(o);
  if (workload == "compare") {
    if (what.size() != 2) fail("bench compare: say what to compare: compare train|decode|layer|ops");
    return bench_compare(o, what[1], python, torch_script);
  }
  fail("bench: unknown workload '", workload, "' (known: ops, train, decode, layer, compare)");
}

cli::Command bench_command("bench", "measure speed: ops, train, decode, layer, compare (with PyTorch)", run_bench);

}  // namespace
}  // namespace payless::bench
