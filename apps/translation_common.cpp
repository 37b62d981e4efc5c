// See apps/translation_common.h.
#include "apps/translation_common.h"

#include <sstream>

#include "models/checkpoint_io.h"

namespace payless {

LoadedTranslator load_translator(const std::string& checkpoint, const std::string& data_dir) {
  LoadedTranslator t;
  t.data = load_prepared(data_dir);
  if (t.data.task != "translation")
    fail(data_dir, " holds '", t.data.task, "' data, not translation data (payless prepare --task translation)");
  t.holder = load_model_from_checkpoint(checkpoint);
  t.model = dynamic_cast<TranslationModel*>(t.holder.get());
  if (!t.model)
    fail(checkpoint, " is not a translation model (task '", t.holder->config().task, "'); for a language model use payless sample");
  t.source_dict = load_dictionary(t.data, "source");
  t.target_dict = load_dictionary(t.data, "target");
  const ModelConfig& c = t.model->config();
  if (c.source_vocab != t.source_dict.size() || c.target_vocab != t.target_dict.size())
    fail(checkpoint, " was trained with vocabularies of ", c.source_vocab, " (source) and ", c.target_vocab,
         " (target) entries, but ", data_dir, " has ", t.source_dict.size(), " and ", t.target_dict.size(),
         ": this is not the data it was trained on");
  t.model->eval();
  return t;
}

BeamSearchOptions beam_options_from_args(cli::Args& args) {
  BeamSearchOptions o;
  o.beam = args.get_int("beam", 4, "beam size (1 = greedy)");
  o.lenpen = static_cast<float>(args.get_double("lenpen", 1.0, "length penalty α: scores are divided by length^α; >1 favours longer output"));
  o.max_len_a = args.get_double("max-len-a", 1.2, "at most a·S + b tokens for a source of S tokens (with </s>)");
  o.max_len_b = args.get_double("max-len-b", 10, "see --max-len-a");
  o.min_len = args.get_int("min-len", 1, "at least this many tokens before </s>");
  o.unk_penalty = static_cast<float>(args.get_double("unk-penalty", 0, "subtracted from the log-probability of <unk>"));
  o.nbest = args.get_int("nbest", 1, "hypotheses to output per sentence (<= beam)");
  return o;
}

void check_beam_options(const BeamSearchOptions& o) {
  if (o.beam < 1) fail("--beam must be at least 1, got ", o.beam);
  if (o.nbest < 1 || o.nbest > o.beam) fail("--nbest must be between 1 and --beam (", o.beam, "), got ", o.nbest);
  if (o.min_len < 0) fail("--min-len must not be negative, got ", o.min_len);
  if (o.max_len_a < 0 || o.max_len_b < 0) fail("--max-len-a and --max-len-b must not be negative");
}

std::string describe(const BeamSearchOptions& o) {
  std::ostringstream s;
  s << "beam " << o.beam << ", lenpen " << o.lenpen << ", max length " << o.max_len_a << "·S + " << o.max_len_b
    << ", min length " << o.min_len;
  if (o.unk_penalty != 0) s << ", unk penalty " << o.unk_penalty;
  return s.str();
}

}  // namespace payless
