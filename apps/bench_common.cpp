// See apps/bench.h: the pieces every `payless bench` workload shares.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "apps/bench.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace payless::bench {

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

namespace {

std::vector<std::string> checked_list(const std::string& option, const std::string& list,
                                      const std::vector<std::string>& known,
                                      const std::vector<std::pair<std::string, std::string>>& aliases = {}) {
  std::vector<std::string> out;
  for (std::string item : split_list(list)) {
    for (const auto& [alias, name] : aliases)
      if (item == alias) item = name;
    if (std::find(known.begin(), known.end(), item) == known.end()) {
      std::string names;
      for (const std::string& k : known) names += (names.empty() ? "" : ", ") + k;
      fail("bench: --", option, " '", item, "' is not one of ", names);
    }
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  if (out.empty()) fail("bench: --", option, " selects nothing (got '", list, "')");
  return out;
}

}  // namespace

Selection parse_selection(const std::string& configs, const std::string& tasks, const std::string& archs) {
  Selection s;
  s.configs = checked_list("config", configs, {"tiny", "small", "iwslt"});
  s.tasks = checked_list("task", tasks, {"lm", "mt"}, {{"translation", "mt"}});
  s.archs = checked_list("arch", archs, {"transformer", "lightweight", "dynamic"},
                         {{"lightconv", "lightweight"}, {"light", "lightweight"},
                          {"dynamicconv", "dynamic"}, {"dyn", "dynamic"}});
  return s;
}

std::vector<ModelWorkload> Selection::workloads() const {
  std::vector<ModelWorkload> out;
  for (const std::string& c : configs)
    for (const std::string& t : tasks)
      for (const std::string& a : archs) out.push_back({c, t, a});
  return out;
}

ModelConfig workload_model_config(const ModelWorkload& w) {
  // The three sizes of the issue: d, F, heads, vocabulary, encoder/decoder layers, kernel widths.
  int64_t d, F, V, encoder_layers, decoder_layers;
  std::vector<int64_t> encoder_kernels, decoder_kernels;
  if (w.config == "tiny") {
    d = 64, F = 128, V = 1000, encoder_layers = decoder_layers = 2;
    encoder_kernels = decoder_kernels = {3, 7};
  } else if (w.config == "small") {
    d = 256, F = 512, V = 8000, encoder_layers = decoder_layers = 3;
    encoder_kernels = decoder_kernels = {3, 7, 15};
  } else if (w.config == "iwslt") {
    d = 512, F = 1024, V = 10000, encoder_layers = 7, decoder_layers = 6;
    encoder_kernels = {3, 7, 15, 31, 31, 31, 31};
    decoder_kernels = {3, 7, 15, 31, 31, 31};
  } else {
    fail("bench: unknown config '", w.config, "'");
  }
  ModelConfig c;
  c.arch = "bench-" + w.config;
  c.task = w.task == "mt" ? "translation" : "lm";
  auto stack = [&](int64_t layers, const std::vector<int64_t>& kernels, bool pre_norm) {
    StackConfig s;
    s.block = w.arch;
    s.embed_dim = d;
    s.ffn_dim = F;
    s.layers = layers;
    s.heads = 4;
    s.kernel_sizes = w.arch == "transformer" ? std::vector<int64_t>{3} : kernels;
    s.glu = false;
    s.normalize_before = pre_norm;
    return s;
  };
  // The language model is the decoder stack with the reference's forced pre-norm (spec §4.7).
  c.decoder = stack(decoder_layers, decoder_kernels, /*pre_norm=*/w.task == "lm");
  if (w.task == "mt") c.encoder = stack(encoder_layers, encoder_kernels, false);
  c.dropout = 0.1f;
  c.attention_dropout = 0.1f;
  c.weight_dropout = 0.1f;
  c.input_dropout = 0.0f;
  c.relu_dropout = 0.0f;
  c.share_decoder_input_output_embed = true;
  c.target_vocab = V;
  c.source_vocab = w.task == "mt" ? V : 0;
  validate(c, "bench workload " + w.name());
  return c;
}

Batch synthetic_batch(const ModelConfig& config, int64_t B, int64_t S, int64_t T, uint64_t seed) {
  auto token = [&](int64_t V, uint64_t stream, int64_t i) {
    // uniform over the ordinary tokens [4, V): never <s>, <pad>, </s> or <unk>
    return static_cast<int32_t>(4 + static_cast<int64_t>(uniform01(seed, stream, i) * (V - 4)) % (V - 4));
  };
  Batch batch;
  std::vector<int32_t> target(B * T), input(B * T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t)
      target[b * T + t] = t + 1 == T ? kEosId : token(config.target_vocab, 1, b * T + t);
    input[b * T] = kEosId;
    for (int64_t t = 1; t < T; ++t) input[b * T + t] = target[b * T + t - 1];
  }
  batch.target = IdTensor(Shape{B, T}, target);
  batch.decoder_input = IdTensor(Shape{B, T}, input);
  batch.target_tokens = B * T;
  if (config.task == "translation") {
    std::vector<int32_t> source(B * S);
    for (int64_t i = 0; i < B * S; ++i)
      source[i] = (i % S) + 1 == S ? kEosId : token(config.source_vocab, 2, i);
    batch.source = IdTensor(Shape{B, S}, source);
  }
  return batch;
}

FlopCount count_forward_flops(const ModelConfig& config, int64_t B, int64_t S, int64_t T) {
  FlopCount f;
  // Self-attention or conv block, then FFN, for one layer over L positions per sentence.
  auto layer = [&](const StackConfig& s, int64_t i, int64_t L) {
    const double n = static_cast<double>(B) * L, d = s.embed_dim, C = s.channels(), F = s.ffn_dim;
    if (s.block == "transformer") {
      f.matmul += 4 * 2 * n * d * d;                      // q, k, v, out projections
      f.matmul += 2 * 2 * static_cast<double>(B) * L * L * d;  // q·kᵀ and P·v over all heads
    } else {
      const double g = s.glu ? 2 : 1, H = s.heads, K = static_cast<double>(s.kernel_size(i));
      f.matmul += 2 * n * d * g * C + 2 * n * C * d;  // linear1, linear2
      if (s.block == "dynamic") f.matmul += 2 * n * C * H * K;  // kernel generator C -> H·K
      f.conv += 2 * n * C * K;                        // spec §3.4: n·d·K MACs
    }
    f.matmul += 2 * 2 * n * d * F;  // fc1, fc2
  };
  const StackConfig& dec = config.decoder;
  for (int64_t i = 0; i < dec.layers; ++i) layer(dec, i, T);
  if (config.task == "translation") {
    const StackConfig& enc = config.encoder;
    for (int64_t i = 0; i < enc.layers; ++i) layer(enc, i, S);
    // Encoder-decoder attention in every decoder layer: q and out over T, k and v over S.
    const double d = dec.embed_dim;
    f.matmul += dec.layers * (2 * 2 * static_cast<double>(B) * T * d * d +
                              2 * 2 * static_cast<double>(B) * S * d * d +
                              2 * 2 * static_cast<double>(B) * T * S * d);
  }
  f.matmul += 2 * static_cast<double>(B) * T * dec.embed_dim * config.target_vocab;  // output layer
  return f;
}

double current_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

double read_pass_seconds(const float* p, int64_t n, int threads) {
  // Split like the one-row products it is the bound of (parallel_chunks, 256 KB a chunk): with a
  // fixed half per thread, a second vCPU that is only half there made the pass wait for it, and
  // the split products then read faster than "memory" did.
  constexpr int64_t lanes = 64, chunk_floats = int64_t{1} << 16;
  const int64_t chunks = (n + chunk_floats - 1) / chunk_floats;
  std::vector<float> sums(static_cast<size_t>(chunks));
  if (num_threads() != threads) set_num_threads(threads);  // the bench's setting, as a rule
  const Clock::time_point start = Clock::now();
  parallel_chunks(chunks, [&](int64_t c) {
    // 64 independent partial sums: the loop vectorises without reassociating a float sum, and
    // four vector additions in flight keep the adder from being the limit.
    // With the one-row products' far prefetch (2 KB ahead into L2, core/kernels/matmul.cpp), so
    // that the bound reads memory as well as they do (one thread, three interleaved pairs: 31.6-34.1
    // GB/s against 27.8-31.6 without).
    float part[lanes] = {};
    for (int64_t i = c * chunk_floats; i < std::min(n, (c + 1) * chunk_floats); i += lanes) {
      for (int64_t l = 0; l < lanes; l += 16) __builtin_prefetch(p + i + 512 + l, 0, 2);
      for (int64_t l = 0; l < lanes; ++l) part[l] += p[i + l];
    }
    float total = 0.0f;
    for (int64_t l = 0; l < lanes; ++l) total += part[l];
    sums[c] = total;
  });
  const double seconds = seconds_since(start);
  float total = 0.0f;
  for (float x : sums) total += x;
  if (total == 12345.0f) std::puts("");  // keeps the sums from being optimised away
  return seconds;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

std::string self_exe() {
  std::array<char, 4096> path{};
  ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) fail("bench: cannot read /proc/self/exe to start child processes");
  return std::string(path.data(), static_cast<size_t>(n));
}

std::string run_capture(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) fail("bench: cannot start: ", command);
  std::string out;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  int status = pclose(pipe);
  if (status != 0) fail("bench: this command failed (status ", status, "): ", command);
  return out;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

void emit(const nlohmann::json& line) {
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

std::string child_arguments(const Options& o) {
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  };
  std::string a = " --threads " + std::to_string(o.threads);
  if (o.warmup >= 0) a += " --warmup " + std::to_string(o.warmup);
  if (o.reps >= 0) a += " --reps " + std::to_string(o.reps);
  a += " --config " + join(o.selection.configs) + " --task " + join(o.selection.tasks) +
       " --arch " + join(o.selection.archs);
  auto numbers = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  if (!o.lengths.empty()) a += " --lengths " + numbers(o.lengths);
  if (!o.batches.empty()) a += " --batches " + numbers(o.batches);
  return a;
}

}  // namespace payless::bench
