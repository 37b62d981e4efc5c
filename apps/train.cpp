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
#include <sys/stat.h>

#include <cstdio>
#include <thread>

#include "apps/cli.h"
#include "apps/data.h"
#include "core/parallel.h"
#include "models/trainer.h"

namespace payless {
namespace {

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

int run_train(cli::Args& args) {
  const std::string config_path = args.get("config", "", "JSON config file with \"model\" and \"train\" sections");
  const std::string arch = args.get("arch", "", "architecture preset (instead of, or overriding, the config's)");
  const std::string data_dir = args.require("data", "prepared data folder (payless prepare --out)");
  const std::string save_dir = args.require("save-dir", "folder for checkpoints and the training log");
  const std::vector<std::string> sets = args.get_all("set", "override a config key: section.key=value, e.g. train.lr=1e-3");
  const int64_t threads = args.get_int("threads", std::max(1u, std::thread::hardware_concurrency()),
                                       "threads for OpenMP and OpenBLAS");
  const bool resume = args.flag("resume", "continue from SAVE_DIR/checkpoint_last.safetensors");
  if (args.wants_help()) {
    std::string presets;
    for (const std::string& p : model_preset_names()) presets += " " + p;
    std::printf("%s\narchitecture presets:%s\n",
                args.usage("Trains a language model or a translator on prepared data.").c_str(), presets.c_str());
    return 0;
  }
  args.finish();
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
  if (resume) {
    if (!file_exists(last)) fail("--resume: there is no ", last, " to resume from");
    trainer.resume(last);
  } else if (file_exists(last)) {
    fail(save_dir, " already holds a training run (", last, "); pass --resume to continue it, or "
         "choose another --save-dir");
  }
  std::printf("model %s (%s): %lld parameters; data %s; %lld threads\n", model_config.arch.c_str(),
              model_config.decoder.block.c_str(), static_cast<long long>(model->num_parameters()),
              data_dir.c_str(), static_cast<long long>(threads));
  trainer.run();
  const EvalResult& v = trainer.last_validation();
  std::printf("done: %lld updates; valid loss %.3f, perplexity %.2f; best checkpoint %s\n",
              static_cast<long long>(trainer.updates()), v.loss, v.ppl, trainer.checkpoint_path("best").c_str());
  return 0;
}

cli::Command train_command("train", "train a language model or translator on prepared data", run_train);

}  // namespace
}  // namespace payless
