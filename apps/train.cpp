// payless train: trains a model on prepared data (payless prepare) with the one Trainer loop.
//
//   payless train --config configs/lm_dynamic_small.json --data runs/bible-lm/data
//                    --save-dir runs/bible-lm/dynamic [--set train.max_update=2000] [--resume]
//
// The config file is {"model": {...}, "train": {...}}: "model" names an architecture preset
// ("arch") and may override its fields; "train" holds the optimisation settings
// (models/config.h lists every key). --set overrides a key with a dotted path. The vocabulary
// sizes come from the prepared data. With --resume, training continues from
// SAVE_DIR/checkpoint_last.safetensors exactly where it stopped.
//
// On several processes or machines: `mpirun -np N payless train ...` (same arguments on every
// rank) trains data-parallel, each rank on its share of every batch (models/trainer.h,
// core/distributed.h). Every rank reads the prepared data from its own disk; the ranks check that
// their configs and data agree. Only rank 0 prints and writes SAVE_DIR. Any rank's error stops
// them all with that error; so does a rank that stops answering for --mpi-timeout seconds.
#include <sched.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "apps/cli.h"
#include "apps/data.h"
#include "core/distributed.h"
#include "core/parallel.h"
#include "models/trainer.h"

namespace payless {
namespace {

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Cores this process may run on (mpirun binds each rank to one core by default for N <= 2).
int allowed_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return static_cast<int>(std::thread::hardware_concurrency());
  return CPU_COUNT(&set);
}

// The default thread count: OMP_NUM_THREADS if set (mpirun -x OMP_NUM_THREADS=...), else this
// machine's cores shared by the ranks running on it, or the cores mpirun bound this rank to.
int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS"))
    if (std::atoi(env) > 0) return std::atoi(env);
  const int all = std::max(1u, std::thread::hardware_concurrency());
  const int allowed = allowed_cores();
  if (allowed > 0 && allowed < all) return allowed;
  return std::max(1, all / local_world_size());
}

struct TrainCommand {
  std::string config_path, arch, data_dir, save_dir;
  std::vector<std::string> sets;
  int64_t threads = 0;  // 0: default_threads()
  bool resume = false;
};
int train(const TrainCommand& command);

int run_train(cli::Args& args) {
  TrainCommand c;
  c.config_path = args.get("config", "", "JSON config file with \"model\" and \"train\" sections");
  c.arch = args.get("arch", "", "architecture preset (instead of, or overriding, the config's)");
  c.data_dir = args.require("data", "prepared data folder (payless prepare --out)");
  c.save_dir = args.require("save-dir", "folder for checkpoints and the training log");
  c.sets = args.get_all("set", "override a config key: section.key=value, e.g. train.lr=1e-3");
  c.threads = args.get_int("threads", 0,
                           "threads for OpenMP and OpenBLAS (0: OMP_NUM_THREADS if set, else this "
                           "machine's cores, shared among the ranks on it)");
  c.resume = args.flag("resume", "continue from SAVE_DIR/checkpoint_last.safetensors");
  const double mpi_timeout = args.get_double("mpi-timeout", 600,
                                             "under mpirun: seconds a rank waits for the others in one "
                                             "exchange before stopping them all (0: forever)");
  if (args.wants_help()) {
    std::string presets;
    for (const std::string& p : model_preset_names()) presets += " " + p;
    std::printf("%s\narchitecture presets:%s\n",
                args.usage("Trains a language model or a translator on prepared data.").c_str(), presets.c_str());
    return 0;
  }
  args.finish();
  if (c.threads < 0) fail("--threads must be >= 0, got ", c.threads);

  DistributedSession session(mpi_timeout);  // a group of one unless started by mpirun
  if (world_size() == 1) return train(c);
  // Under mpirun an error must stop every rank, not leave the others waiting for this one.
  try {
    return train(c);
  } catch (const Error& e) {
    abort_all(std::string("payless train: error: ") + e.what());
  } catch (const std::exception& e) {
    abort_all(std::string("payless train: unexpected error: ") + e.what());
  }
}

int train(const TrainCommand& c) {
  const std::string &config_path = c.config_path, &arch = c.arch, &data_dir = c.data_dir, &save_dir = c.save_dir;
  const std::vector<std::string>& sets = c.sets;
  const bool resume = c.resume;
  const int64_t threads = c.threads > 0 ? c.threads : default_threads();
  if (world_size() > 1 && threads > allowed_cores())
    std::fprintf(stderr,
                 "payless train (rank %d of %d): warning: %lld threads on %d core(s): mpirun bound this rank "
                 "to fewer cores than it uses; start mpirun with --bind-to none\n",
                 world_rank(), world_size(), static_cast<long long>(threads), allowed_cores());
  set_num_threads(static_cast<int>(threads));

  nlohmann::json j = config_path.empty() ? nlohmann::json::object() : read_json_file(config_path);
  const std::string origin = config_path.empty() ? "command line" : config_path;
  if (!j.is_object()) fail(origin, ": the config must be a JSON object with \"model\" and \"train\"");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "model" && it.key() != "train")
      fail(origin, ": unknown top-level key '", it.key(), "' (expected \"model\" and \"train\")");
  if (!arch.empty()) j["model"]["arch"] = arch;
  apply_overrides(j, sets);
  if (!j.contains("model") || !j["model"].contains("arch"))
    fail(origin, ": no architecture: give model.arch in the config or --arch");

  // Configs first, so that a typo is reported before anything is loaded.
  ModelConfig model_config = model_config_from_json(j["model"], origin + ": model");
  TrainConfig train_config = train_config_from_json(j.value("train", nlohmann::json::object()), origin + ": train");
  PreparedData data = load_prepared(data_dir);
  if (model_config.task != data.task)
    fail("the model is for task '", model_config.task, "' but ", data_dir, " was prepared for '", data.task, "'");
  // The vocabulary sizes are facts of the data, not settings.
  model_config.target_vocab = data.vocab_size;
  model_config.source_vocab = data.task == "translation" ? data.source_vocab_size : 0;
  validate(model_config, origin + ": model");
  // Ranks that disagree on any of these would train different things (or hang on different
  // buffer sizes); refuse before the first update.
  const char* same = "every rank must be started with the same configs and --set options, and read identical "
                     "prepared data (copy the folder, or prepare it the same way)";
  check_same_on_all_ranks("prepared data (" + data_dir + "/prepare.json outputs)",
                          data.info.value("outputs", nlohmann::json()).dump(), same);
  check_same_on_all_ranks("model config", model_config_to_json(model_config).dump(), same);
  check_same_on_all_ranks("train config", train_config_to_json(train_config).dump(), same);
  manual_seed(train_config.seed);
  std::unique_ptr<SequenceModel> model = build_model(model_config, train_config.seed);
  std::unique_ptr<BatchSource> train_source = make_train_source(data, train_config);
  std::vector<Batch> valid = make_eval_batches(data, "valid", train_config);

  TrainerOptions options;
  options.save_dir = save_dir;
  options.log_path = save_dir + "/train.jsonl";
  options.metadata = {{"data_dir", data_dir}, {"task", data.task}, {"prepare", data.info}};
  Trainer trainer(*model, train_config, *train_source, std::move(valid), options);
  const std::string last = trainer.checkpoint_path("last");
  if (is_root()) {  // rank 0's disk holds the checkpoints; it reads and sends them (Trainer::resume)
    if (resume && !file_exists(last)) fail("--resume: there is no ", last, " to resume from");
    if (!resume && file_exists(last))
      fail(save_dir, " already holds a training run (", last, "); pass --resume to continue it, or "
           "choose another --save-dir");
  }
  if (resume) trainer.resume(last);
  if (is_root()) {
    std::string ranks;
    if (world_size() > 1) ranks = " per rank; " + std::to_string(world_size()) + " ranks";
    std::printf("model %s (%s): %lld parameters; data %s; %lld threads%s\n", model_config.arch.c_str(),
                model_config.decoder.block.c_str(), static_cast<long long>(model->num_parameters()),
                data_dir.c_str(), static_cast<long long>(threads), ranks.c_str());
  }
  trainer.run();
  const EvalResult& v = trainer.last_validation();
  if (is_root())
    std::printf("done: %lld updates; valid loss %.3f, perplexity %.2f; best checkpoint %s\n",
                static_cast<long long>(trainer.updates()), v.loss, v.ppl, trainer.checkpoint_path("best").c_str());
  return 0;
}

cli::Command train_command("train", "train a language model or translator on prepared data", run_train);

}  // namespace
}  // namespace payless
