// payless score: corpus BLEU of a hypothesis file against a reference file, as sacreBLEU 2.6.0
// computes it by default (text/bleu.h; the definition is /work/shared/bleu.md).
//
//   payless score HYP REF      ->  BLEU = 39.89 68.5/46.7/33.2/23.8 (BP = 1.000 ratio = ...)
//                                  nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0
// Both files are detokenized text, one sentence per line, line i against line i.
#include <cstdio>

#include "apps/cli.h"
#include "core/error.h"
#include "text/bleu.h"

namespace payless {
namespace {

int run_score(cli::Args& args) {
  const int64_t decimals = args.get_int("decimals", 2, "decimals of the score");
  std::vector<std::string> files = args.positionals("HYP REF", "hypothesis and reference files (one sentence per line)");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Scores hypotheses against references with corpus BLEU (sacreBLEU's defaults).").c_str());
    return 0;
  }
  args.finish();
  if (files.size() != 2) fail("score: give a hypothesis file and a reference file (got ", files.size(), " files)");
  if (decimals < 0 || decimals > 6) fail("score: --decimals must be between 0 and 6, got ", decimals);
  BleuScore s = score_files(files[0], files[1]);
  std::printf("%s\n%s\n", s.format(static_cast<int>(decimals)).c_str(), s.signature().c_str());
  return 0;
}

cli::Command score_command("score", "corpus BLEU of a hypothesis file against a reference file", run_score);

}  // namespace
}  // namespace payless
