// payless bench decode: incremental decoding of 50 tokens with Decoder::step, per selected model.
//
//   lm: greedy from </s>, batch 1 and batch 32.
//   mt: encode a 32-token source once, then greedy (batch 1 and 32) and beam 4 (batch 1 and 32)
//       through models/beam_search.h.
// Greedy always runs exactly 50 steps (argmax over the whole vocabulary, </s> does not stop it),
// so that an untrained model's random choices do not change the amount of work. Beam search runs
// with min_len = max_len = 50: </s> is forbidden for 50 steps and forced at the 51st, so it too
// does a fixed 51 steps. Sentences/s = batch / total time (encoder included); ms/step = total time
// / steps. Greedy mt rows also give ms_encode, the encoder's time alone (median of its own runs).
// Definitions: docs/benchmarks.md; the PyTorch twin: bench/torch_reference.py.
#include <cstdio>
#include <limits>

#include "apps/bench.h"
#include "core/autograd.h"
#include "models/beam_search.h"
#include "models/language_model.h"
#include "models/translation_model.h"

namespace payless::bench {
namespace {

constexpr int64_t kDecodeTokens = 50, kDecodeSourceLen = 32;

// Row-wise argmax of logits (N, V): the first index of the largest value (NaN never wins). Two
// vectorised passes (the max, then where it is) instead of std::max_element's compare-and-branch
// per element, which cost 10% of a greedy step at batch 32 (32 x 8000 logits).
void argmax_rows(const Tensor& logits, std::vector<int32_t>& out) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const float* p = logits.data();
  for (int64_t n = 0; n < N; ++n) {
    const float* row = p + n * V;
    float best = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : best)
    for (int64_t v = 0; v < V; ++v) best = row[v] > best ? row[v] : best;  // NaN: keeps best
    int64_t at = 0;
    while (at < V && !(row[at] == best)) ++at;
    out[n] = static_cast<int32_t>(at < V ? at : 0);
  }
}

nlohmann::json decode_line(const ModelWorkload& w, const Options& o, const char* mode, int64_t B,
                           int64_t beam, int64_t steps, double seconds, int warmup, int reps) {
  return {{"bench", "decode"},   {"impl", "payless"},
          {"workload", w.name()}, {"config", w.config},
          {"task", w.task},       {"arch", w.arch},
          {"mode", mode},         {"batch", B},
          {"beam", beam},         {"tokens", kDecodeTokens},
          {"steps", steps},       {"ms_total", seconds * 1e3},
          {"ms_per_step", seconds * 1e3 / steps},
          {"sentences_per_s", B / seconds},
          {"threads", o.threads}, {"warmup", warmup},
          {"reps", reps},         {"load", load_average()}};
}

}  // namespace

int bench_decode(const Options& o) {
  const int warmup = o.warmup >= 0 ? o.warmup : 1, reps = o.reps >= 0 ? o.reps : 5;
  std::vector<nlohmann::json> rows;
  NoGrad no_grad;
  for (const ModelWorkload& w : o.selection.workloads()) {
    const ModelConfig config = workload_model_config(w);
    std::unique_ptr<SequenceModel> model = build_model(config, 1);
    model->eval();
    for (int64_t B : o.batches) {
      std::vector<int32_t> tokens(B);
      if (w.task == "lm") {
        const Decoder& decoder = dynamic_cast<LanguageModel&>(*model).decoder;
        const double s = median_seconds(warmup, reps, [&] {
          DecoderState state = decoder.start_state();
          std::fill(tokens.begin(), tokens.end(), kEosId);
          for (int64_t i = 0; i < kDecodeTokens; ++i)
            argmax_rows(decoder.step(tokens, Tensor(), Tensor(), state), tokens);
        });
        rows.push_back(decode_line(w, o, "greedy", B, 1, kDecodeTokens, s, warmup, reps));
        emit(rows.back());
        continue;
      }
      const TranslationModel& mt = dynamic_cast<TranslationModel&>(*model);
      const IdTensor source = synthetic_batch(config, B, kDecodeSourceLen, 1, 11).source;  // (B, S)
      const double greedy = median_seconds(warmup, reps, [&] {
        EncoderOutput encoded = mt.encode(source);
        DecoderState state = mt.decoder.start_state();
        std::fill(tokens.begin(), tokens.end(), kEosId);
        for (int64_t i = 0; i < kDecodeTokens; ++i)
          argmax_rows(mt.decoder.step(tokens, encoded.out, encoded.padding_mask, state), tokens);
      });
      // The encoder's share of the greedy time, for comparisons of the steps alone.
      const double encode = median_seconds(warmup, reps, [&] { mt.encode(source); });
      rows.push_back(decode_line(w, o, "greedy", B, 1, kDecodeTokens, greedy, warmup, reps));
      rows.back()["ms_encode"] = encode * 1e3;
      emit(rows.back());
      BeamSearchOptions beam;
      beam.beam = 4;
      beam.max_len_a = 0;
      beam.max_len_b = kDecodeTokens;
      beam.min_len = kDecodeTokens;
      const std::vector<int64_t> lengths(B, kDecodeSourceLen);
      const double beamed = median_seconds(warmup, reps, [&] {
        TranslationScorer scorer(mt, source);
        beam_search(scorer, lengths, beam);
      });
      rows.push_back(decode_line(w, o, "beam", B, 4, kDecodeTokens + 1, beamed, warmup, reps));
      emit(rows.back());
    }
  }
  if (!o.quiet) {
    std::printf("\n%-24s %-7s %6s %5s %11s %12s\n", "decode workload", "mode", "batch", "beam",
                "ms/step", "sentences/s");
    for (const nlohmann::json& r : rows)
      std::printf("%-24s %-7s %6lld %5lld %11.2f %12.1f\n", r["workload"].get<std::string>().c_str(),
                  r["mode"].get<std::string>().c_str(), r["batch"].get<long long>(),
                  r["beam"].get<long long>(), r["ms_per_step"].get<double>(),
                  r["sentences_per_s"].get<double>());
  }
  return 0;
}

}  // namespace payless::bench
