// Data-parallel training (models/trainer.h, core/distributed.h).
//
// [distributed]: the sharding of a batch among ranks, in one process: the shards' losses and
// gradients add up to the whole batch's, for a language model and a translator.
// [mpi]: real runs of `mpirun -np 2 payless train` on a slice of the shipped English corpus:
//   - 2 ranks × half of each batch end with the same parameters (float tolerance) as 1 rank ×
//     the whole batch, and runs resume across rank counts (2 -> 1 and 1 -> 2);
//   - a rank killed with SIGKILL, a rank that stops answering (SIGSTOP) and a rank with an error
//     of its own each stop the whole run quickly, non-zero and with a message.
// The [mpi] cases need mpirun (Debian: openmpi-bin) and a payless built with MPI
// (libopenmpi-dev); where either is missing they say so with a warning and check nothing.
// scripts/install_deps.sh installs both, so CI runs them.
#include <catch2/catch.hpp>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "apps/data.h"
#include "core/autograd.h"
#include "core/distributed.h"
#include "core/serialize.h"
#include "models/sequence_model.h"
#include "models/trainer.h"
#include "text/lines.h"
#include "tests/support/command.h"

using namespace payless;
namespace fs = std::filesystem;

namespace {

// ---- sharding, in one process ------------------------------------------------------------------

ModelConfig tiny(const std::string& arch) {
  ModelConfig c = model_preset(arch);
  for (StackConfig* s : {&c.encoder, &c.decoder}) {
    s->embed_dim = 16;
    s->ffn_dim = 32;
    s->layers = 2;
    s->heads = 2;
    s->kernel_sizes = {3};
  }
  c.dropout = c.input_dropout = c.attention_dropout = c.weight_dropout = c.relu_dropout = 0.0f;  // deterministic
  c.target_vocab = 20;
  c.source_vocab = arch.rfind("mt_", 0) == 0 ? 20 : 0;
  c.share_all_embeddings = false;
  return c;
}

// (B, W) ids, each row padded with kPadId to W on the right, or on the left.
IdTensor padded(const std::vector<std::vector<int32_t>>& rows, bool left) {
  size_t W = 0;
  for (const auto& r : rows) W = std::max(W, r.size());
  std::vector<int32_t> v;
  for (const auto& r : rows) {
    if (left) v.insert(v.end(), W - r.size(), kPadId);
    v.insert(v.end(), r.begin(), r.end());
    if (!left) v.insert(v.end(), W - r.size(), kPadId);
  }
  return IdTensor(Shape{static_cast<int64_t>(rows.size()), static_cast<int64_t>(W)}, v);
}

// Five rows of different lengths (with sources for a translator), so that shards trim padding.
Batch ragged_batch(bool with_source) {
  const std::vector<std::vector<int32_t>> targets = {
      {5, 6, 7, 8, 9, kEosId}, {10, 11, kEosId}, {12, 13, 14, 15, kEosId}, {16, kEosId}, {17, 18, 19, 4, kEosId}};
  std::vector<std::vector<int32_t>> inputs;
  int64_t tokens = 0;
  for (const auto& t : targets) {
    std::vector<int32_t> in = {kEosId};
    in.insert(in.end(), t.begin(), t.end() - 1);
    inputs.push_back(in);
    tokens += static_cast<int64_t>(t.size());
  }
  Batch b;
  b.decoder_input = padded(inputs, false);  // (5, 6)
  b.target = padded(targets, false);        // (5, 6)
  b.target_tokens = tokens;
  if (with_source)
    b.source = padded({{4, 5, kEosId}, {6, 7, 8, 9, 10, 11, kEosId}, {12, kEosId}, {13, 14, 15, 16, kEosId}, {17, kEosId}},
                      true);  // (5, 7), left-padded
  return b;
}

std::vector<std::vector<float>> gradients(const Module& m) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, p] : m.named_parameters())
    out.push_back(p.has_grad() ? p.grad().to_vector() : std::vector<float>(static_cast<size_t>(p.numel()), 0.0f));
  return out;
}

}  // namespace

TEST_CASE("the ranks' shards of a batch add up to the whole batch", "[distributed]") {
  for (const std::string arch : {"lm_dynamic_small", "mt_dynamic_small", "mt_transformer_small"}) {
    INFO(arch);
    const bool mt = arch.rfind("mt_", 0) == 0;
    auto model = build_model(tiny(arch), 5);
    model->train();
    const Batch whole = ragged_batch(mt);
    CrossEntropyResult full = model->loss(whole, 0.1f, SmoothingVariant::kPaper);
    const double full_loss = full.loss.item(), full_nll = full.nll.item();
    backward(full.loss);
    const auto full_grads = gradients(*model);
    for (auto& [name, p] : model->named_parameters()) p.zero_grad();

    for (int ranks : {1, 2, 3, 5, 7}) {
      INFO(ranks << " ranks");
      double loss = 0, nll = 0;
      int64_t tokens = 0, rows = 0;
      for (int r = 0; r < ranks; ++r) {
        Batch shard = shard_batch(whole, r, ranks);
        const int64_t B = shard.target.shape[0];
        CHECK(B == 5 * (r + 1) / ranks - 5 * r / ranks);  // contiguous rows, rounded down
        rows += B;
        tokens += shard.target_tokens;
        if (B == 0) continue;  // 7 ranks: some have no row
        CHECK(shard.decoder_input.shape == shard.target.shape);
        // No all-padding column is left at the end of the targets or the start of the sources.
        bool last_column_used = false, first_column_used = false;
        for (int64_t i = 0; i < B; ++i) {
          last_column_used |= shard.target.values[(i + 1) * shard.target.shape[1] - 1] != kPadId;
          if (mt) first_column_used |= shard.source.values[i * shard.source.shape[1]] != kPadId;
        }
        CHECK(last_column_used);
        CHECK((first_column_used || !mt));
        CrossEntropyResult part = model->loss(shard, 0.1f, SmoothingVariant::kPaper);
        CHECK(part.tokens == shard.target_tokens);
        loss += part.loss.item();
        nll += part.nll.item();
        backward(part.loss);  // accumulates, as the ranks' all-reduce sums
      }
      CHECK(rows == 5);
      CHECK(tokens == whole.target_tokens);
      CHECK(loss == Approx(full_loss).epsilon(1e-5));
      CHECK(nll == Approx(full_nll).epsilon(1e-5));
      const auto summed = gradients(*model);
      double worst = 0, scale = 0;
      for (size_t i = 0; i < summed.size(); ++i)
        for (size_t j = 0; j < summed[i].size(); ++j) {
          worst = std::max(worst, double(std::fabs(summed[i][j] - full_grads[i][j])));
          scale = std::max(scale, double(std::fabs(full_grads[i][j])));
        }
      CHECK(scale > 0);
      CHECK(worst <= 1e-5 * scale);
      for (auto& [name, p] : model->named_parameters()) p.zero_grad();
    }
  }
}

namespace {

// ---- real runs under mpirun --------------------------------------------------------------------

// Why the [mpi] cases cannot run here, or "" if they can.
std::string mpi_missing() {
  if (!mpi_built_in())
    return "payless was built without MPI (install libopenmpi-dev and configure again): [mpi] runs skipped";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
    return "mpirun is not installed (Debian: openmpi-bin; scripts/install_deps.sh installs it): [mpi] runs skipped";
  return "";
}

std::string make_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("payless_mpi_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Prepares the first 600 verses of the shipped English corpus (BPE with `merges` merges).
std::string prepare_small(const std::string& dir, int64_t merges) {
  const std::string corpus = std::string(PAYLESS_SOURCE_DIR) + "/data/bible-en-lm/";
  fs::create_directories(dir);
  auto slice = [&](const std::string& split, size_t n) {
    std::vector<std::string> lines = read_lines(corpus + split + ".txt.gz");
    REQUIRE(lines.size() >= n);
    const std::string path = dir + "/" + split + ".txt";
    write_lines(path, std::vector<std::string>(lines.begin(), lines.begin() + n));
    return path;
  };
  PrepareOptions o;
  o.task = "lm";
  o.out_dir = dir + "/data";
  o.train = slice("train", 600);
  o.valid = slice("valid", 60);
  o.test = o.valid;
  o.bpe_merges = merges;
  o.quiet = true;
  prepare_lm(o);
  return o.out_dir;
}

// A tiny DynamicConv LM without dropout (so that the runs must agree), 2 blocks of 32 tokens
// per rank and batch, validation and a checkpoint every 3 updates.
std::string train_args(const std::string& data, const std::string& save_dir, int64_t max_update) {
  return "train --arch lm_dynamic_small --data " + data + " --save-dir " + save_dir +
         " --threads 1 --set model.decoder.embed_dim=32 --set model.decoder.ffn_dim=64"
         " --set model.decoder.layers=2 --set 'model.decoder.kernel_sizes=[3]' --set model.dropout=0"
         " --set model.input_dropout=0 --set train.tokens_per_sample=32 --set train.max_tokens=128"
         " --set train.warmup_updates=2 --set train.lr=1e-3 --set train.log_interval=1"
         " --set train.save_interval_updates=3 --set train.validate_interval_updates=3"
         " --set train.keep_last_checkpoints=4 --set train.max_update=" +
         std::to_string(max_update);
}

// mpirun as CI runs it: as root if need be, more ranks than cores allowed, one thread per rank.
// Under the sanitizers, the ranks do not check for leaks: OpenMPI's plugins keep allocations
// until exit by design and are unloaded before LeakSanitizer could name them; payless's own code
// is leak-checked by the unit tests in this process.
std::string mpirun(int ranks) {
  return "mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE"
         " -x ASAN_OPTIONS=detect_leaks=0 -np " + std::to_string(ranks) + " ";
}

using Run = payless::testing::CommandResult;
Run run(const std::string& command) { return payless::testing::run_command(command); }

// Largest |a - b| over the model's parameters (not the optimizer's state) of two checkpoints.
double parameter_difference(const std::string& a_path, const std::string& b_path) {
  Checkpoint a = load_checkpoint(a_path), b = load_checkpoint(b_path);
  double worst = 0;
  int compared = 0;
  for (const auto& [name, t] : a.tensors) {
    if (name.rfind("optimizer.", 0) == 0) continue;
    const Tensor* u = b.find(name);
    REQUIRE(u != nullptr);
    REQUIRE(u->numel() == t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) worst = std::max(worst, double(std::fabs(t.data()[i] - u->data()[i])));
    ++compared;
  }
  CHECK(compared > 5);
  return worst;
}

std::string metadata(const std::string& path, const std::string& key) {
  return load_checkpoint(path).metadata_value(key);
}

// The "train" lines of a train.jsonl by update: (loss, gnorm), both from the global sums.
std::map<int64_t, std::pair<double, double>> logged_updates(const std::string& path) {
  std::map<int64_t, std::pair<double, double>> out;
  std::ifstream log(path);
  std::string line;
  while (std::getline(log, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] == "train") out[j["update"].get<int64_t>()] = {j["loss"].get<double>(), j["gnorm"].get<double>()};
  }
  return out;
}

}  // namespace

TEST_CASE("2 ranks x half batches equal 1 rank x whole batches, and runs resume across rank counts", "[mpi]") {
  const std::string missing = mpi_missing();
  if (!missing.empty()) {
    WARN(missing);
    return;
  }
  const std::string dir = make_dir("equal");
  const std::string data = prepare_small(dir, 200);
  const std::string binary = PAYLESS_BINARY;

  // A: one process, whole batches, 6 updates (checkpoints at 3 and 6).
  Run a = run(binary + " " + train_args(data, dir + "/a", 6));
  REQUIRE(a.status == 0);
  // B: two ranks for 3 updates, then one process resumes to 6.
  Run b = run(mpirun(2) + binary + " " + train_args(data, dir + "/b", 3));
  INFO(b.output);
  REQUIRE(b.status == 0);
  CHECK_THAT(b.output, Catch::Contains("2 ranks share each batch"));
  CHECK(parameter_difference(dir + "/a/checkpoint_3.safetensors", dir + "/b/checkpoint_last.safetensors") < 5e-6);
  CHECK(metadata(dir + "/a/checkpoint_3.safetensors", "data_position") ==
        metadata(dir + "/b/checkpoint_last.safetensors", "data_position"));
  // The logged loss and gradient norm come from the summed losses and gradients, normalised by
  // the global token count (Adam alone would hide a gradient scaled by the wrong count).
  const auto a_log = logged_updates(dir + "/a/train.jsonl"), b_log = logged_updates(dir + "/b/train.jsonl");
  for (int64_t u = 1; u <= 3; ++u) {
    INFO("update " << u);
    REQUIRE(a_log.count(u) == 1);
    REQUIRE(b_log.count(u) == 1);
    CHECK(b_log.at(u).first == Approx(a_log.at(u).first).epsilon(1e-5));
    CHECK(b_log.at(u).second == Approx(a_log.at(u).second).epsilon(1e-4));
  }
  Run b1 = run(binary + " " + train_args(data, dir + "/b", 6) + " --resume");
  INFO(b1.output);
  REQUIRE(b1.status == 0);
  CHECK(parameter_difference(dir + "/a/checkpoint_6.safetensors", dir + "/b/checkpoint_last.safetensors") < 5e-6);
  // C: one process's checkpoint at 3, resumed by two ranks to 6.
  fs::create_directories(dir + "/c");
  fs::copy_file(dir + "/a/checkpoint_3.safetensors", dir + "/c/checkpoint_last.safetensors");
  Run c = run(mpirun(2) + binary + " " + train_args(data, dir + "/c", 6) + " --resume");
  INFO(c.output);
  REQUIRE(c.status == 0);
  CHECK(parameter_difference(dir + "/a/checkpoint_6.safetensors", dir + "/c/checkpoint_last.safetensors") < 5e-6);
  CHECK(metadata(dir + "/a/checkpoint_6.safetensors", "data_position") ==
        metadata(dir + "/c/checkpoint_last.safetensors", "data_position"));
  // The tolerances above are far below what three updates move the parameters by.
  CHECK(parameter_difference(dir + "/a/checkpoint_3.safetensors", dir + "/a/checkpoint_6.safetensors") > 1e-3);

  // Only rank 0 prints and logs: one line per update, one "start" per run.
  std::ifstream log(dir + "/b/train.jsonl");
  std::string line;
  int starts = 0, first_updates = 0;
  while (std::getline(log, line)) {
    starts += line.find("\"type\":\"start\"") != std::string::npos;
    first_updates += line.find("\"type\":\"train\"") != std::string::npos && line.find("\"update\":1,") != std::string::npos;
  }
  CHECK(starts == 2);
  CHECK(first_updates == 1);
  // Rank 0's log lines of the two-rank run say how much of the time went into the exchange.
  std::ifstream b_log_file(dir + "/b/train.jsonl");
  int with_comm = 0;
  while (std::getline(b_log_file, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] != "train" || !j.contains("comm_fraction")) continue;
    ++with_comm;
    CHECK(j["ranks"] == 2);
    CHECK(j["comm_fraction"].get<double>() >= 0);
    CHECK(j["comm_fraction"].get<double>() <= 1);
  }
  CHECK(with_comm == 3);  // updates 1-3 ran on two ranks; 4-6 on one, without the field
  size_t done_lines = 0;
  for (size_t at = b.output.find("done:"); at != std::string::npos; at = b.output.find("done:", at + 1)) ++done_lines;
  CHECK(done_lines == 1);
  fs::remove_all(dir);
}

namespace {

// A command running in the background, its output going to a file. The destructor kills it if
// it is still running (when a REQUIRE ended the test early).
struct Background {
  pid_t pid = -1;
  std::string output_path;
  int status = -1;  // exit status once finished (-1: killed by a signal)

  Background(const std::string& command, const std::string& output) : output_path(output) {
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + command + " >" + output + " 2>&1").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  // Waits up to `seconds` for the command to end; false if it is still running.
  bool wait(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      int s = 0;
      if (waitpid(pid, &s, WNOHANG) == pid) {
        status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
        pid = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string output() const {
    std::ifstream in(output_path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ~Background() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

std::string read_proc(pid_t pid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + what, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The processes whose command line mentions `marker` (a test's own folder), each with its MPI rank
// (from the environment mpirun gave it; -1 if none).
std::vector<std::pair<pid_t, int>> processes_of(const std::string& marker) {
  std::vector<std::pair<pid_t, int>> found;
  DIR* proc = opendir("/proc");
  if (!proc) return found;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    const std::string cmdline = read_proc(pid, "cmdline");
    if (cmdline.find(marker) == std::string::npos || cmdline.rfind("timeout", 0) == 0) continue;
    if (cmdline.find("payless") != 0 && cmdline.find("/payless") == std::string::npos) continue;
    if (cmdline.find(std::string("\0train\0", 7)) == std::string::npos) continue;
    const std::string env = read_proc(pid, "environ");
    const std::string key = std::string("\0", 1) + "OMPI_COMM_WORLD_RANK=";
    const size_t at = env.find(key);
    found.emplace_back(pid, at == std::string::npos ? -1 : std::atoi(env.c_str() + at + key.size()));
  }
  closedir(proc);
  return found;
}

pid_t rank_pid(const std::string& marker, int rank) {
  for (const auto& [pid, r] : processes_of(marker))
    if (r == rank) return pid;
  return -1;
}

// Waits until rank 0 has logged a training update (the ranks are past start-up and exchanging).
bool training_started(const std::string& save_dir, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream log(save_dir + "/train.jsonl");
    std::string line;
    while (std::getline(log, line))
      if (line.find("\"type\":\"train\"") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Whatever a failed check left running is killed, so that no test leaves processes behind.
void kill_leftovers(const std::string& marker, Background& launcher) {
  for (const auto& [pid, rank] : processes_of(marker)) kill(pid, SIGKILL);
  if (launcher.pid > 0) {
    kill(launcher.pid, SIGKILL);
    launcher.wait(10);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("a rank killed mid-run stops every rank quickly, with a non-zero exit", "[mpi]") {
  const std::string missing = mpi_missing();
  if (!missing.empty()) {
    WARN(missing);
    return;
  }
  const std::string dir = make_dir("kill");
  const std::string data = prepare_small(dir, 200);
  // Until killed; the time budget ends it anyway should the test stop early.
  Background job(mpirun(2) + PAYLESS_BINARY + " " + train_args(data, dir + "/run", 1000000) +
                     " --set train.time_budget_minutes=1",
                 dir + "/out.txt");
  REQUIRE(training_started(dir + "/run", 60));
  const pid_t victim = rank_pid(dir, 1);
  REQUIRE(victim > 0);
  const auto killed_at = std::chrono::steady_clock::now();
  REQUIRE(kill(victim, SIGKILL) == 0);
  const bool ended = job.wait(30);
  const double seconds = seconds_since(killed_at);
  INFO(job.output());
  CHECK(ended);
  CHECK(job.status != 0);
  CHECK(seconds < 10);
  CHECK_THAT(job.output(), Catch::Contains("signal 9"));
  kill_leftovers(dir, job);
  CHECK(processes_of(dir).empty());
  fs::remove_all(dir);
}

TEST_CASE("a rank that stops answering makes the others give up after --mpi-timeout", "[mpi]") {
  const std::string missing = mpi_missing();
  if (!missing.empty()) {
    WARN(missing);
    return;
  }
  const std::string dir = make_dir("stop");
  const std::string data = prepare_small(dir, 200);
  Background job(mpirun(2) + PAYLESS_BINARY + " " + train_args(data, dir + "/run", 1000000) +
                     " --set train.time_budget_minutes=1 --mpi-timeout 2",
                 dir + "/out.txt");
  REQUIRE(training_started(dir + "/run", 60));
  const pid_t victim = rank_pid(dir, 1);
  REQUIRE(victim > 0);
  const auto stopped_at = std::chrono::steady_clock::now();
  REQUIRE(kill(victim, SIGSTOP) == 0);  // alive, but silent: the runtime cannot tell
  const bool ended = job.wait(30);
  const double seconds = seconds_since(stopped_at);
  INFO(job.output());
  CHECK(ended);
  CHECK(job.status != 0);
  CHECK(seconds >= 2);
  CHECK(seconds < 12);
  CHECK_THAT(job.output(), Catch::Contains("(rank 0 of 2): waited 2 s in") && Catch::Contains("--mpi-timeout"));
  kill_leftovers(dir, job);
  CHECK(processes_of(dir).empty());
  fs::remove_all(dir);
}

TEST_CASE("an error on one rank stops every rank with that rank's message", "[mpi]") {
  const std::string missing = mpi_missing();
  if (!missing.empty()) {
    WARN(missing);
    return;
  }
  const std::string dir = make_dir("error");
  const std::string data = prepare_small(dir, 200);
  const std::string other = prepare_small(dir + "/other", 150);  // other BPE: other token ids
  // Two programs in one run (mpirun's "A : B"): rank 1 reads different data than rank 0.
  const auto start = std::chrono::steady_clock::now();
  Run r = run(mpirun(1) + PAYLESS_BINARY + " " + train_args(data, dir + "/run", 5) + " : -np 1 " + PAYLESS_BINARY +
              " " + train_args(other, dir + "/run", 5));
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(seconds_since(start) < 30);
  CHECK_THAT(r.output, Catch::Contains("(rank 1 of 2): payless train: error: rank 1's prepared data") &&
                           Catch::Contains("every rank must be started with the same"));
  CHECK(!fs::exists(dir + "/run/checkpoint_last.safetensors"));
  fs::remove_all(dir);
}
