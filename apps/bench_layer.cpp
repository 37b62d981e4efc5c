// payless bench layer: the sublayer the paper swaps, alone, as the sequence grows.
//
//   dynamic:     Linear(d→d) → DynamicConv(K=31, H=4, centred) → Linear(d→d)
//   lightweight: Linear(d→d) → LightweightConv(K=31, H=4, centred) → Linear(d→d)
//   attention:   MultiheadAttention(d, H=4), self-attention, no mask
// (the conv block without GLU, as the IWSLT models, against fairseq's attention sublayer; no
// LayerNorm, residual or dropout around either). d=512, batch 8, forward + backward with a fixed
// random upstream gradient, x requiring a gradient too, T = 64 ... 2048. Reported: ms per
// forward+backward, the conv/attention ratio, and the growth per doubling of T (2.0 is linear,
// 4.0 quadratic). --svg draws time against T on log-log axes (apps/svg.h).
#include <cstdio>
#include <fstream>
#include <map>

#include "apps/bench.h"
#include "apps/svg.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "layers/attention.h"
#include "layers/dynamic_conv.h"
#include "layers/lightweight_conv.h"
#include "layers/linear.h"

namespace payless::bench {
namespace {

constexpr int64_t kLayerBatch = 8, kLayerDim = 512, kLayerHeads = 4, kLayerKernel = 31;

// Forward FLOPs of one block over B·T positions (spec §3.4, module level, no GLU).
double layer_forward_flops(const std::string& block, int64_t T) {
  const double n = static_cast<double>(kLayerBatch) * T, d = kLayerDim, K = kLayerKernel, H = kLayerHeads;
  if (block == "attention") return 4 * 2 * n * d * d + 2 * 2 * n * T * d;
  double f = 2 * 2 * n * d * d + 2 * n * d * K;
  if (block == "dynamic") f += 2 * n * d * H * K;
  return f;
}

}  // namespace

void write_layer_svg(const std::string& path, const std::vector<nlohmann::json>& rows) {
  std::map<std::string, svg::Series> series;  // "payless dynamic" -> points
  for (const nlohmann::json& r : rows) {
    const std::string label = r["impl"].get<std::string>() + " " + r["block"].get<std::string>();
    svg::Series& s = series[label];
    s.label = label;
    s.points = true;
    s.x.push_back(r["T"].get<double>());
    s.y.push_back(r["ms"].get<double>());
  }
  svg::Panel panel;
  panel.title = "one sublayer, forward+backward, B=8, d=512, H=4, K=31 (log-log)";
  panel.x_label = "sequence length T";
  panel.y_label = "ms";
  panel.log_x = panel.log_y = true;
  for (auto& [label, s] : series) panel.series.push_back(s);
  std::ofstream out(path);
  if (!out) fail("bench: cannot write the chart to '", path, "'");
  out << svg::render({panel}, 760, 420);
  if (!out) fail("bench: writing '", path, "' failed");
}

void print_layer_table(const std::vector<nlohmann::json>& rows, const std::string& impl) {
  std::map<int64_t, std::map<std::string, double>> ms;  // T -> block -> ms
  for (const nlohmann::json& r : rows)
    if (r["impl"] == impl) ms[r["T"].get<int64_t>()][r["block"].get<std::string>()] = r["ms"].get<double>();
  std::printf("\n%s: ms per forward+backward (growth = time(T) / time(T/2))\n", impl.c_str());
  std::printf("%6s %10s %10s %10s %9s %9s %8s %8s %8s\n", "T", "dynamic", "lightwt", "attention",
              "dyn/att", "light/att", "grow dyn", "grow lw", "grow att");
  const std::map<std::string, double>* previous = nullptr;
  for (const auto& [T, m] : ms) {
    auto get = [&](const std::map<std::string, double>& x, const char* b) {
      auto it = x.find(b);
      return it == x.end() ? 0.0 : it->second;
    };
    auto grow = [&](const char* b) { return previous && get(*previous, b) > 0 ? get(m, b) / get(*previous, b) : 0.0; };
    const double att = get(m, "attention");
    std::printf("%6lld %10.2f %10.2f %10.2f %9.2f %9.2f %8.2f %8.2f %8.2f\n", static_cast<long long>(T),
                get(m, "dynamic"), get(m, "lightweight"), att, att > 0 ? get(m, "dynamic") / att : 0.0,
                att > 0 ? get(m, "lightweight") / att : 0.0, grow("dynamic"), grow("lightweight"),
                grow("attention"));
    previous = &m;
  }
}

int bench_layer(const Options& o) {
  Rng rng(3);
  const int64_t d = kLayerDim, H = kLayerHeads, K = kLayerKernel;
  Linear dyn_in(d, d, true, rng), dyn_out(d, d, true, rng), light_in(d, d, true, rng), light_out(d, d, true, rng);
  DynamicConv dynamic(d, K, H, K / 2, true, 0.0f, false, rng);
  LightweightConv lightweight(d, K, H, K / 2, true, 0.0f, false, rng);
  MultiheadAttention attention(d, H, 0.0f, true, rng);
  std::vector<Module*> modules = {&dyn_in, &dyn_out, &light_in, &light_out, &dynamic, &lightweight, &attention};
  for (Module* m : modules) m->train();

  std::vector<nlohmann::json> rows;
  for (int64_t T : o.lengths) {
    Tensor x = Tensor::empty({kLayerBatch, T, d}), g = Tensor::empty({kLayerBatch, T, d});
    rng.uniform_(x, -1, 1);
    rng.uniform_(g, -1, 1);
    x.set_requires_grad();
    for (const std::string block : {"dynamic", "lightweight", "attention"}) {
      auto run = [&] {
        Tensor y;
        if (block == "dynamic") y = dyn_out.forward(dynamic.forward(dyn_in.forward(x)));
        else if (block == "lightweight") y = light_out.forward(lightweight.forward(light_in.forward(x)));
        else y = attention.forward(x, x, x);
        backward(y, g);
        for (Module* m : modules) m->zero_grad();
        x.zero_grad();
      };
      const int warmup = o.warmup >= 0 ? o.warmup : 1;
      const int reps = o.reps >= 0 ? o.reps : (T >= 1024 ? 3 : 5);
      const double s = median_seconds(warmup, reps, run);
      const double flops = 3 * layer_forward_flops(block, T);
      rows.push_back({{"bench", "layer"}, {"impl", "payless"}, {"block", block}, {"T", T},
                      {"batch", kLayerBatch}, {"d", d}, {"heads", H}, {"kernel", K},
                      {"ms", s * 1e3}, {"gflop", flops / 1e9}, {"gflops", flops / s / 1e9},
                      {"threads", o.threads}, {"warmup", warmup}, {"reps", reps}, {"load", load_average()}});
      emit(rows.back());
    }
  }
  if (!o.quiet) print_layer_table(rows, "payless");
  if (!o.svg.empty()) {
    write_layer_svg(o.svg, rows);
    std::printf("chart: %s\n", o.svg.c_str());
  }
  return 0;
}

}  // namespace payless::bench
