// What `payless translate` and `payless generate` share: loading a translator with the prepared
// data it was trained on (checking that they belong together), and the beam-search options of
// the command line. The search itself is models/beam_search.h.
#pragma once

#include <memory>
#include <string>

#include "apps/cli.h"
#include "apps/data.h"
#include "models/beam_search.h"
#include "models/translation_model.h"
#include "text/dictionary.h"

namespace payless {

struct LoadedTranslator {
  std::unique_ptr<SequenceModel> holder;
  TranslationModel* model = nullptr;  // = holder, in eval mode
  PreparedData data;
  Dictionary source_dict, target_dict;
};

// Errors name the checkpoint and the folder: not a translator, not translation data, or
// dictionaries of other sizes than the model's (a model trained on other data).
LoadedTranslator load_translator(const std::string& checkpoint, const std::string& data_dir);

// Declares --beam, --lenpen, --max-len-a, --max-len-b, --min-len, --unk-penalty, --nbest and
// returns them checked. Call before args.wants_help().
BeamSearchOptions beam_options_from_args(cli::Args& args);
void check_beam_options(const BeamSearchOptions& options);

// "beam 4, lenpen 1, max length 1.2·S + 10, min length 1" for the log.
std::string describe(const BeamSearchOptions& options);

}  // namespace payless
