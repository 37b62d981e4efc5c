// payless bench compare KIND: payless and bench/torch_reference.py side by side, interleaved.
//
// For every workload of the selection (every T for `layer`), both implementations run in fresh
// child processes, one right after the other, alternating which goes first, with the same
// environment: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = --threads (PyTorch's OpenBLAS does not
// follow torch.set_num_threads) and OMP_WAIT_POLICY=PASSIVE unless set. On a shared machine the
// absolute times drift with other people's work; taking each ratio from two back-to-back runs keeps
// most of that drift out of the ratio. Speedup = payless rate / PyTorch rate (> 1: payless faster).
#include <sys/stat.h>

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

  std::vector<nlohmann::json> ours, theirs;
  for (size_t i = 0; i < units.size(); ++i) {
    const Options& u = units[i];
    auto run_ours = [&] {
      std::vector<nlohmann::json> lines;
      if (kind == "train") lines = {train_in_child(u.selection.workloads()[0], u)};
      else lines = json_lines(run_capture(env + "'" + self_exe() + "' bench " + kind + " --quiet" + child_arguments(u)));
      for (nlohmann::json& l : lines)
        if (l.value("impl", "payless") == "payless" && !(kind == "ops" && !l.contains("ms"))) {
          l["impl"] = "payless";
          ours.push_back(l);
          emit(l);
        }
    };
    auto run_theirs = [&] {
      for (nlohmann::json& l :
           json_lines(run_capture(env + "'" + python + "' '" + script + "' " + kind + child_arguments(u)))) {
        if (l.value("impl", "") != "torch") continue;
        theirs.push_back(l);
        emit(l);
      }
    };
    if (i % 2 == 0) run_ours(), run_theirs();
    else run_theirs(), run_ours();
  }

  std::map<std::string, nlohmann::json> torch_rows;
  for (const nlohmann::json& r : theirs) torch_rows[row_key(kind, r)] = r;
  std::printf("\n%-34s %12s %12s %9s", ("compare " + kind).c_str(), "payless", "PyTorch", "speedup");
  if (kind == "train") std::printf(" %10s %10s %9s", "peak MB", "torch MB", "mem ratio");
  std::printf("\n");
  const char* unit = kind == "train" ? "tokens/s" : kind == "decode" ? "sentences/s" : "1/ms";
  for (const nlohmann::json& r : ours) {
    const std::string key = row_key(kind, r);
    auto it = torch_rows.find(key);
    if (it == torch_rows.end()) continue;
    const double a = row_rate(kind, r), b = row_rate(kind, it->second);
    if (!(a > 0 && b > 0)) continue;
    std::printf("%-34s %12.4g %12.4g %8.2fx", key.c_str(), a, b, a / b);
    nlohmann::json ratio = {{"bench", "compare"}, {"kind", kind}, {"key", key}, {"unit", unit},
                            {"payless", a}, {"torch", b}, {"speedup", a / b}, {"threads", o.threads}};
    if (kind == "train") {
      const double ma = r["peak_rss_mb"].get<double>(), mb = it->second["peak_rss_mb"].get<double>();
      const double da = r["peak_delta_mb"].get<double>(), db = it->second["peak_delta_mb"].get<double>();
      std::printf(" %10.0f %10.0f %8.2fx  (delta %0.f vs %0.f MB)", ma, mb, ma / mb, da, db);
      ratio["peak_rss_mb"] = {ma, mb};
      ratio["peak_delta_mb"] = {da, db};
    }
    std::printf("\n");
    emit(ratio);
  }
  std::printf("rates in %s (layer, ops: 1/ms); speedup = payless / PyTorch; load now %.2f\n", unit, load_average());
  if (kind == "layer") {
    print_layer_table(ours, "payless");
    print_layer_table(theirs, "torch");
    if (!o.svg.empty()) {
      std::vector<nlohmann::json> all = ours;
      all.insert(all.end(), theirs.begin(), theirs.end());
      write_layer_svg(o.svg, all);
      std::printf("chart: %s\n", o.svg.c_str());
    }
  }
  return 0;
}

}  // namespace payless::bench
