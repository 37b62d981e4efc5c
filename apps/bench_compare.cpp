// payless bench compare KIND: payless and bench/torch_reference.py side by side, interleaved.
//
// For every workload of the selection (every T for `layer`), both implementations run in fresh
// child processes, one right after the other, alternating which goes first, with the same
// environment: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = --threads (PyTorch's OpenBLAS does not
// follow torch.set_num_threads) and OMP_WAIT_POLICY=PASSIVE unless set. On a shared machine the
// absolute times drift with other people's work; taking each ratio from two back-to-back runs keeps
// most of that drift out of the ratio. Speedup = payless rate / PyTorch rate (> 1: payless faster);
// with --rounds N every pair runs N times and the median of the N ratios is reported, with their
// spread (largest / smallest) as a visible measure of the noise.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "apps/bench.h"
#include "core/error.h"

namespace payless::bench {
namespace {

std::string default_torch_script() {
  // This file's path as the compiler saw it: <source>/apps/bench_compare.cpp.
  std::string here = __FILE__;
  const size_t apps = here.rfind("/apps/");
  return apps == std::string::npos ? "bench/torch_reference.py" : here.substr(0, apps) + "/bench/torch_reference.py";
}

// The key that pairs a payless row with its PyTorch row, and the rate compared.
std::string row_key(const std::string& kind, const nlohmann::json& r) {
  if (kind == "train") return r["workload"].get<std::string>();
  if (kind == "decode")
    return r["workload"].get<std::string>() + " " + r["mode"].get<std::string>() + " b" +
           std::to_string(r["batch"].get<int64_t>());
  if (kind == "layer") return r["block"].get<std::string>() + " T=" + std::to_string(r["T"].get<int64_t>());
  return r.value("op", "") + " " + r.value("what", "");
}

// Higher is better for every rate here.
double row_rate(const std::string& kind, const nlohmann::json& r) {
  if (kind == "train") return r["tokens_per_s"].get<double>();
  if (kind == "decode") return r["sentences_per_s"].get<double>();
  return r.contains("ms") ? 1.0 / r["ms"].get<double>() : 0.0;
}

}  // namespace

int bench_compare(const Options& o, const std::string& kind, const std::string& python,
                  const std::string& torch_script) {
  if (kind != "train" && kind != "decode" && kind != "layer" && kind != "ops")
    fail("bench compare: KIND must be train, decode, layer or ops, got '", kind, "'");
  const std::string script = torch_script.empty() ? default_torch_script() : torch_script;
  struct stat info {};
  if (stat(script.c_str(), &info) != 0)
    fail("bench compare: PyTorch script '", script, "' not found (pass --torch-script PATH)");
  const std::string env = child_environment(o.threads);

  // One unit of interleaving: a single workload (or a single T) on both sides.
  std::vector<Options> units;
  if (kind == "train" || kind == "decode") {
    for (const ModelWorkload& w : o.selection.workloads()) {
      Options one = o;
      one.selection.configs = {w.config};
      one.selection.tasks = {w.task};
      one.selection.archs = {w.arch};
      units.push_back(one);
    }
  } else if (kind == "layer") {
    for (int64_t T : o.lengths) {
      Options one = o;
      one.lengths = {T};
      units.push_back(one);
    }
  } else {
    units.push_back(o);
  }

  // rounds × units, alternating which side goes first; rows keep their round number.
  std::vector<nlohmann::json> ours, theirs;
  size_t turn = 0;
  for (int round = 0; round < std::max(o.rounds, 1); ++round) {
    for (const Options& u : units) {
      auto run_ours = [&] {
        std::vector<nlohmann::json> lines;
        if (kind == "train") lines = {train_in_child(u.selection.workloads()[0], u)};
        else lines = json_lines(run_capture(env + "'" + self_exe() + "' bench " + kind + " --quiet" + child_arguments(u)));
        for (nlohmann::json& l : lines)
          if (l.value("impl", "payless") == "payless" && !(kind == "ops" && !l.contains("ms"))) {
            l["impl"] = "payless";
            l["round"] = round;
            ours.push_back(l);
            emit(l);
          }
      };
      auto run_theirs = [&] {
        for (nlohmann::json& l :
             json_lines(run_capture(env + "'" + python + "' '" + script + "' " + kind + child_arguments(u)))) {
          if (l.value("impl", "") != "torch") continue;
          l["round"] = round;
          theirs.push_back(l);
          emit(l);
        }
      };
      if (turn++ % 2 == 0) run_ours(), run_theirs();
      else run_theirs(), run_ours();
    }
  }

  // Per key: the rates of every round on both sides; speedup = median over rounds of the
  // ratio of the two back-to-back runs, rates = medians.
  struct Pair {
    nlohmann::json first_ours, first_theirs;
    std::map<int, double> ours, theirs;  // round -> rate
  };
  std::vector<std::string> order;
  std::map<std::string, Pair> pairs;
  for (const nlohmann::json& r : ours) {
    const std::string key = row_key(kind, r);
    if (!pairs.count(key)) order.push_back(key), pairs[key].first_ours = r;
    pairs[key].ours[r["round"].get<int>()] = row_rate(kind, r);
  }
  for (const nlohmann::json& r : theirs) {
    const std::string key = row_key(kind, r);
    if (!pairs.count(key)) continue;
    if (pairs[key].first_theirs.is_null()) pairs[key].first_theirs = r;
    pairs[key].theirs[r["round"].get<int>()] = row_rate(kind, r);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  std::printf("\n%-34s %12s %12s %9s %7s", ("compare " + kind).c_str(), "payless", "PyTorch", "speedup", "spread");
  if (kind == "train") std::printf(" %10s %10s %9s", "peak MB", "torch MB", "mem ratio");
  std::printf("\n");
  const char* unit = kind == "train" ? "tokens/s" : kind == "decode" ? "sentences/s" : "1/ms";
  for (const std::string& key : order) {
    const Pair& p = pairs[key];
    std::vector<double> a, b, ratios;
    for (const auto& [round, rate] : p.ours) {
      a.push_back(rate);
      auto it = p.theirs.find(round);
      if (it != p.theirs.end() && rate > 0 && it->second > 0) ratios.push_back(rate / it->second);
    }
    for (const auto& [round, rate] : p.theirs) b.push_back(rate);
    if (ratios.empty()) continue;
    const double speedup = median(ratios);
    const double spread = *std::max_element(ratios.begin(), ratios.end()) / *std::min_element(ratios.begin(), ratios.end());
    std::printf("%-34s %12.4g %12.4g %8.2fx %6.2fx", key.c_str(), median(a), median(b), speedup, spread);
    nlohmann::json ratio = {{"bench", "compare"}, {"kind", kind}, {"key", key}, {"unit", unit},
                            {"payless", median(a)}, {"torch", median(b)}, {"speedup", speedup},
                            {"ratios", ratios}, {"threads", o.threads}};
    if (kind == "train") {
      const nlohmann::json &r = p.first_ours, &t = p.first_theirs;
      const double ma = r["peak_rss_mb"].get<double>(), mb = t["peak_rss_mb"].get<double>();
      const double da = r["peak_delta_mb"].get<double>(), db = t["peak_delta_mb"].get<double>();
      std::printf(" %10.0f %10.0f %8.2fx  (delta %0.f vs %0.f MB)", ma, mb, ma / mb, da, db);
      ratio["peak_rss_mb"] = {ma, mb};
      ratio["peak_delta_mb"] = {da, db};
      ratio["params"] = {r["params"], t["params"]};
    }
    std::printf("\n");
    emit(ratio);
  }
  std::printf("speedup = median over %d round(s) of payless/PyTorch from back-to-back runs; spread = "
              "largest/smallest of those ratios\n", std::max(o.rounds, 1));
  std::printf("rates in %s (layer, ops: 1/ms); load now %.2f\n", unit, load_average());
  if (kind == "layer") {
    // One row per (impl, block, T) with the median time over the rounds.
    auto median_rows = [&](const std::vector<nlohmann::json>& rows) {
      std::map<std::string, std::vector<double>> times;
      std::map<std::string, nlohmann::json> first;
      std::vector<std::string> keys;
      for (const nlohmann::json& r : rows) {
        const std::string key = row_key(kind, r);
        if (!first.count(key)) first[key] = r, keys.push_back(key);
        times[key].push_back(r["ms"].get<double>());
      }
      std::vector<nlohmann::json> out;
      for (const std::string& key : keys) {
        out.push_back(first[key]);
        out.back()["ms"] = median(times[key]);
      }
      return out;
    };
    const std::vector<nlohmann::json> ours_median = median_rows(ours), theirs_median = median_rows(theirs);
    print_layer_table(ours_median, "payless");
    print_layer_table(theirs_median, "torch");
    if (!o.svg.empty()) {
      std::vector<nlohmann::json> all = ours_median;
      all.insert(all.end(), theirs_median.begin(), theirs_median.end());
      write_layer_svg(o.svg, all);
      std::printf("chart: %s\n", o.svg.c_str());
    }
  }
  return 0;
}

}  // namespace payless::bench
