// Prepared data: the folder `payless prepare` writes (BPE codes, dictionaries, binarized splits
// and prepare.json), the functions that write it, and the adapters through which train, eval,
// sample and translate read it: training batches for the Trainer, fixed evaluation batches, and
// encoding of raw user text exactly the way the training text was encoded.
//
// The folder, for --task lm:           for --task translation (es -> en):
//   bpe.codes     subword-nmt codes      bpe.codes              one joint BPE for both languages
//   dict.txt      fairseq vocabulary     dict.txt               joined dictionary (the default), or
//   train.bin     text/corpus.h format   dict.es.txt dict.en.txt  one per language
//   valid.bin                            {train,valid,test}.es.bin / .en.bin   line-aligned
//   test.bin
//   prepare.json  settings, a fingerprint (size + checksum64) of every input file, per-split
//                 counts (sentences, tokens, <unk>), and size + checksum of every output file.
// prepare.json is written last, so a folder with a matching prepare.json is complete; preparing
// again with the same settings and unchanged inputs does nothing.
//
// Not here: tokenizer/BPE/dictionary/batching themselves (text/), the command-line parsing of
// `payless prepare` (apps/prepare.cpp), the training loop (models/trainer.h).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/sequence_model.h"
#include "models/trainer.h"
#include "text/bpe.h"
#include "text/dictionary.h"

namespace payless {

// ---- preparing -----------------------------------------------------------------------------

struct PrepareOptions {
  std::string task = "lm";  // "lm" or "translation"
  std::string out_dir;

  // --task lm: one text file per split (plain or gzipped), one sentence per line.
  std::string train = "data/bible-en-lm/train.txt.gz";
  std::string valid = "data/bible-en-lm/valid.txt.gz";
  std::string test = "data/bible-en-lm/test.txt.gz";

  // --task translation: files PREFIX.LANG or PREFIX.LANG.gz, line-aligned across languages.
  std::string source_lang = "es", target_lang = "en";
  std::string train_prefix = "data/bible-es-en/train";
  std::string valid_prefix = "data/bible-es-en/valid";
  std::string test_prefix = "data/bible-es-en/test";
  bool joined_dictionary = true;

  int64_t bpe_merges = 8000;       // payless prepare uses 10000 for translation by default
  int64_t bpe_min_frequency = 2;   // subword-nmt's default: stop at pairs seen once
  int64_t dict_threshold = 0;      // fairseq preprocess defaults: keep every token ...
  int64_t dict_nwords = -1;        // ... with no size limit ...
  int64_t padding_factor = 8;      // ... and pad the size to a multiple of 8
  bool force = false;              // prepare again even when prepare.json matches
  bool quiet = false;              // no progress lines on stderr
};

// What a prepared folder holds, as the other commands need it.
struct PreparedData {
  std::string dir;
  std::string task;                      // "lm" or "translation"
  std::string source_lang, target_lang;  // empty for "lm"
  nlohmann::json info;                   // prepare.json
  int64_t vocab_size = 0;                // joined or target dictionary size (V)
  int64_t source_vocab_size = 0;         // source dictionary size; 0 for "lm"
};

// Prepares options.out_dir (see the top of this file), or does nothing when its prepare.json
// records the same settings and the same input contents and every output file is intact.
// `reused`, if given, tells which of the two happened. Progress with timings goes to stderr.
// Errors name the file: a missing input, an empty corpus, parallel files of different lengths.
PreparedData prepare_lm(const PrepareOptions& options, bool* reused = nullptr);
PreparedData prepare_translation(const PrepareOptions& options, bool* reused = nullptr);
// prepare_lm or prepare_translation, by options.task.
PreparedData prepare_data(const PrepareOptions& options, bool* reused = nullptr);

// Reads DIR/prepare.json and checks that the files it lists are there. Errors name the folder
// and the missing file and say to run `payless prepare`.
PreparedData load_prepared(const std::string& dir);

// side: "source" or "target". For "lm" and for a joined dictionary both sides are dict.txt;
// "source" of an "lm" folder is an error.
Dictionary load_dictionary(const PreparedData& data, const std::string& side);
Bpe load_bpe(const PreparedData& data);

// ---- batches -------------------------------------------------------------------------------

// Shuffled training batches of the train split (seed = config.seed; LM blocks of
// config.tokens_per_sample, MT pairs within config.max_source_len/max_target_len, batches of
// config.max_tokens). position() is {"epoch", "index", "batches_per_epoch"} (epoch 0-based as
// in text/batching.h); restore() checks it and continues exactly there.
std::unique_ptr<BatchSource> make_train_source(const PreparedData& data, const TrainConfig& config);

// Every batch of `split` ("train", "valid" or "test") in a fixed order, for validation and
// evaluation. MT pairs over the length limits are left out and counted on stderr.
std::vector<Batch> make_eval_batches(const PreparedData& data, const std::string& split,
                                     const TrainConfig& config);

// ---- raw text ------------------------------------------------------------------------------

// One line of raw text -> ids, as the training data was made: tokenize -> BPE -> dictionary
// (unknown subwords become <unk>). No </s> is appended.
std::vector<int32_t> encode_text(const std::string& line, Bpe& bpe, const Dictionary& dict);
// The inverse: ids -> subwords (specials dropped) -> remove BPE -> detokenize.
std::string decode_text(const std::vector<int32_t>& ids, const Dictionary& dict);

}  // namespace payless
