// payless sample: continue a prompt with a trained language model (greedy, temperature, top-k).
//
//   payless sample --checkpoint runs/bible-lm/dynamic/checkpoint_best.safetensors
//                     --data runs/bible-lm/data --prompt "In the beginning" --num 3
//
// Decoding is incremental (models/sampling.h): each new token costs one step through every
// layer, with constant memory per convolution layer.
#include <cstdio>
#include <thread>

#include "apps/cli.h"
#include "apps/data.h"
#include "core/parallel.h"
#include "models/checkpoint_io.h"
#include "models/sampling.h"

namespace payless {
namespace {

int run_sample(cli::Args& args) {
  const std::string checkpoint = args.require("checkpoint", "language-model checkpoint (.safetensors)");
  const std::string data_dir = args.require("data", "prepared data folder the model was trained on");
  const std::string prompt = args.get("prompt", "", "text to continue (empty: start a new verse)");
  const int64_t num = args.get_int("num", 1, "how many samples");
  SamplingOptions options;
  options.max_new_tokens = args.get_int("max-tokens", 60, "most new subword tokens per sample");
  options.temperature = static_cast<float>(args.get_double("temperature", 0.8, "softmax temperature (> 0)"));
  options.top_k = args.get_int("top-k", 40, "sample among the k likeliest tokens (0: all)");
  options.greedy = args.flag("greedy", "always take the likeliest token");
  options.seed = static_cast<uint64_t>(args.get_int("seed", 1, "random seed"));
  const int64_t threads = args.get_int("threads", 1, "threads");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Continues a prompt with a trained language model.").c_str());
    return 0;
  }
  args.finish();
  if (num < 1) fail("--num must be at least 1");
  if (!options.greedy && !(options.temperature > 0)) fail("--temperature must be positive");
  set_num_threads(static_cast<int>(threads));
  PreparedData data = load_prepared(data_dir);
  std::unique_ptr<SequenceModel> model = load_model_from_checkpoint(checkpoint);
  auto* lm = dynamic_cast<LanguageModel*>(model.get());
  if (!lm) fail(checkpoint, " is not a language model (task '", model->config().task, "')");
  if (lm->config().target_vocab != data.vocab_size)
    fail(checkpoint, " does not match the vocabulary of ", data_dir);
  lm->eval();
  Bpe bpe = load_bpe(data);
  Dictionary dict = load_dictionary(data, "target");
  std::vector<int32_t> prompt_ids = encode_text(prompt, bpe, dict);
  for (int64_t i = 0; i < num; ++i) {
    SamplingOptions o = options;
    o.seed = options.seed + static_cast<uint64_t>(i);
    std::vector<int32_t> ids = prompt_ids;
    for (int32_t t : generate(*lm, prompt_ids, o))
      if (t != kEosId) ids.push_back(t);
    std::printf("%s\n", decode_text(ids, dict).c_str());
  }
  return 0;
}

cli::Command sample_command("sample", "continue a prompt with a trained language model", run_sample);

}  // namespace
}  // namespace payless
