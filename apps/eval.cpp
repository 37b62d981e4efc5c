// payless eval: the loss and perplexity of a checkpoint on a prepared split or on a raw text file.
//
//   payless eval --checkpoint runs/bible-lm/dynamic/checkpoint_best.safetensors
//                   --data runs/bible-lm/data [--split test | --text my.txt]
//
// A raw text file is encoded exactly as the training data was (tokenizer, BPE, dictionary) and
// cut into blocks of --tokens-per-sample, as in training. Perplexity is per subword token,
// 2^(NLL in bits), with </s> counted as a token like the reference does.
#include <chrono>
#include <cstdio>
#include <thread>

#include "apps/cli.h"
#include "apps/data.h"
#include "core/parallel.h"
#include "models/checkpoint_io.h"
#include "text/batching.h"
#include "text/corpus.h"
#include "text/lines.h"

namespace payless {
namespace {

std::vector<Batch> text_file_batches(const std::string& path, const PreparedData& data, int64_t block) {
  Bpe bpe = load_bpe(data);
  Dictionary dict = load_dictionary(data, "target");
  std::vector<std::string> lines = read_lines(path);
  Corpus corpus(path, dict.size());
  int64_t sentences = 0;
  for (const std::string& line : lines) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    corpus.add_sentence(encode_text(line, bpe, dict));
    ++sentences;
  }
  if (sentences == 0) fail(path, ": no text to evaluate (the file is empty)");
  LmBatchOptions options;
  options.tokens_per_sample = block;
  options.max_tokens = block * 16;
  options.shuffle = false;
  LmBatcher batcher(corpus, options);
  std::vector<Batch> batches;
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    LmBatch b = batcher.next();
    Batch out;
    out.decoder_input = IdTensor(Shape{b.B, b.T}, b.input);
    out.target = IdTensor(Shape{b.B, b.T}, b.target);
    out.target_tokens = b.num_tokens;
    batches.push_back(std::move(out));
  }
  return batches;
}

int run_eval(cli::Args& args) {
  const std::string checkpoint = args.require("checkpoint", "model checkpoint (.safetensors)");
  const std::string data_dir = args.require("data", "prepared data folder the model was trained on");
  const std::string split = args.get("split", "test", "prepared split to evaluate: train, valid or test");
  const std::string text = args.get("text", "", "raw text file to evaluate instead of a split (language models)");
  const int64_t block = args.get_int("tokens-per-sample", 512, "block length for language-model evaluation");
  const int64_t threads = args.get_int("threads", std::max(1u, std::thread::hardware_concurrency()), "threads");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Reports loss (base 2) and perplexity of a checkpoint.").c_str());
    return 0;
  }
  args.finish();
  set_num_threads(static_cast<int>(threads));
  PreparedData data = load_prepared(data_dir);
  std::unique_ptr<SequenceModel> model = load_model_from_checkpoint(checkpoint);
  if (model->config().task != data.task)
    fail(checkpoint, " is a '", model->config().task, "' model but ", data_dir, " holds '", data.task, "' data");
  if (model->config().target_vocab != data.vocab_size)
    fail(checkpoint, " has a vocabulary of ", model->config().target_vocab, " but ", data_dir, " has ", data.vocab_size,
         " entries: this is not the data it was trained on");
  TrainConfig config;
  config.tokens_per_sample = block;
  std::vector<Batch> batches;
  std::string what;
  if (!text.empty()) {
    if (data.task != "lm") fail("--text evaluates language models; for translation use --split");
    batches = text_file_batches(text, data, block);
    what = text;
  } else {
    batches = make_eval_batches(data, split, config);
    what = data_dir + " " + split;
  }
  auto start = std::chrono::steady_clock::now();
  EvalResult r = evaluate(*model, batches, 0.0f, SmoothingVariant::kPaper);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %lld tokens | loss %.4f bits/token | perplexity %.2f | %.0f tokens/s\n", what.c_str(),
              static_cast<long long>(r.tokens), r.nll_loss, r.ppl, r.tokens / std::max(seconds, 1e-9));
  nlohmann::json line = {{"eval", what}, {"tokens", r.tokens}, {"nll_loss", r.nll_loss}, {"ppl", r.ppl}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

cli::Command eval_command("eval", "loss and perplexity of a checkpoint on a split or a text file", run_eval);

}  // namespace
}  // namespace payless
