// payless bench decode: incremental decoding of 50 tokens with Decoder::step, per selected model.
//
//   lm: greedy from </s>, batch 1 and batch 32.
//   mt: encode a 32-token source once, then greedy (batch 1 and 32) and beam 4 (batch 1 and 32)
//       through models/beam_search.h.
// Greedy always runs exactly 50 steps (argmax over the whole vocabulary, </s> does not stop it),
// so that an untrained model's random choices do not change the amount of work. Beam search runs
// with min_len = max_len = 50: </s> is forbidden for 50 steps and forced at the 51st, so it too
// does a fixed 51 steps. Sentences/s = batch / total time (encoder included); ms/step = total time
// / steps. Greedy mt rows also give ms_encode, the encoder's share of the same runs. Greedy rows at
// batch 1 give the memory bound of a step: weight_mb_per_step / read_gbs (the read rate of memory
// on 2 MiB pages, the median of three passes right after each run) = ms_bound, and
// bound_ratio = ms/step / ms_bound (bound_ratio_steps: the same without the encoder's time),
// medians over the runs.
// Definitions: docs/benchmarks.md; the PyTorch twin: bench/torch_reference.py.
#include <algorithm>
#include <cstdio>

#include "apps/bench.h"
#include "core/autograd.h"
#include "core/kernels/reduce.h"
#include "models/beam_search.h"
#include "models/language_model.h"
#include "models/translation_model.h"

namespace payless::bench {
namespace {

constexpr int64_t kDecodeTokens = 50, kDecodeSourceLen = 32;
constexpr int kReadPasses = 3;

// Row-wise argmax of logits (N, V): the first index of the largest value (NaN never wins). Two
// vectorised passes (the max, then where it is) instead of std::max_element's compare-and-branch
// per element, which cost 10% of a greedy step at batch 32 (32 x 8000 logits).
void argmax_rows(const Tensor& logits, std::vector<int32_t>& out) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const float* p = logits.data();
  for (int64_t n = 0; n < N; ++n) {
    const float* row = p + n * V;
    const float best = kernels::max_of(row, V);  // NaN: passed over
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

// Bytes of parameters one decoding step reads: every decoder parameter but the encoder-attention
// key and value projections (applied once per source sentence, at the first step) and the
// positional table (one row per step). A tied embedding counts once, as the output layer.
double step_weight_bytes(const Decoder& decoder) {
  double floats = 0;
  for (const auto& [name, t] : decoder.named_parameters())
    if (name.find("encoder_attn.k_proj") == std::string::npos &&
        name.find("encoder_attn.v_proj") == std::string::npos &&
        name.find("embed_positions") == std::string::npos)
      floats += static_cast<double>(t.numel());
  return 4.0 * floats;
}

// The batch-1 greedy runs measure how close a step comes to the time its weights take to come
// from memory. Each timed run is followed by three timed reads of a 128 MB array on 2 MiB pages
// (where the parameters live), their median taken, so that every ratio pairs a run with the read
// rate of the same moment: on this shared machine the rate moves by ±15% from minute to minute.
// The array is larger than the weights (58-84 MB at iwslt) so that it measures memory, not the
// 32 MB L3: re-read in a loop, a 128 MB array came at 28.4 GB/s, 58-84 MB ones at 30.2-30.8 and
// a 32 MB one at 58, so steps whose weights are small can come out below their bound.
struct GreedyTimes {
  std::vector<double> total, encode, steps, read_gbs;
};

}  // namespace

int bench_decode(const Options& o) {
  const int warmup = o.warmup >= 0 ? o.warmup : 1, reps = std::max(o.reps >= 0 ? o.reps : 5, 1);
  std::vector<nlohmann::json> rows;
  NoGrad no_grad;
  Tensor read_array;  // (32 Mi), for the batch-1 rows
  if (std::find(o.batches.begin(), o.batches.end(), 1) != o.batches.end()) {
    read_array = Tensor::full({int64_t{32} << 20}, 1.0f);
    pack_storages({read_array});  // on 2 MiB pages, as the parameters are
  }
  for (const ModelWorkload& w : o.selection.workloads()) {
    const ModelConfig config = workload_model_config(w);
    std::unique_ptr<SequenceModel> model = build_model(config, 1);
    model->eval();
    const TranslationModel* mt = w.task == "mt" ? &dynamic_cast<TranslationModel&>(*model) : nullptr;
    const Decoder& decoder = mt ? mt->decoder : dynamic_cast<LanguageModel&>(*model).decoder;
    for (int64_t B : o.batches) {
      std::vector<int32_t> tokens(B);
      IdTensor source;
      if (mt) source = synthetic_batch(config, B, kDecodeSourceLen, 1, 11).source;  // (B, S)
      GreedyTimes times;
      for (int r = -warmup; r < reps; ++r) {
        const Clock::time_point start = Clock::now();
        EncoderOutput encoded;
        if (mt) encoded = mt->encode(source);
        const double encode = seconds_since(start);
        DecoderState state = decoder.start_state();
        std::fill(tokens.begin(), tokens.end(), kEosId);
        for (int64_t i = 0; i < kDecodeTokens; ++i)
          argmax_rows(decoder.step(tokens, encoded.out, encoded.padding_mask, state), tokens);
        const double total = seconds_since(start);
        if (r < 0) continue;  // warm-up
        times.total.push_back(total);
        times.encode.push_back(encode);
        times.steps.push_back(total - encode);
        if (B == 1) {
          // The median of three passes, so that neither a pass slowed by other work on the
          // machine nor one sped up by what the caches kept sets the bound.
          std::vector<double> passes;
          for (int pass = 0; pass < kReadPasses; ++pass)
            passes.push_back(read_pass_seconds(read_array.data(), read_array.numel(), o.threads));
          times.read_gbs.push_back(4.0 * read_array.numel() / median_of(passes) / 1e9);
        }
      }
      rows.push_back(decode_line(w, o, "greedy", B, 1, kDecodeTokens, median_of(times.total), warmup, reps));
      nlohmann::json& line = rows.back();
      if (mt) line["ms_encode"] = median_of(times.encode) * 1e3;
      if (B == 1) {
        // bound = weight bytes / read rate; ratio = time per step / bound, per run, then the median.
        const double bytes = step_weight_bytes(decoder);
        std::vector<double> ratio, ratio_steps;
        for (int r = 0; r < reps; ++r) {
          const double bound = bytes / (times.read_gbs[r] * 1e9);
          ratio.push_back(times.total[r] / kDecodeTokens / bound);
          ratio_steps.push_back(times.steps[r] / kDecodeTokens / bound);
        }
        line["weight_mb_per_step"] = bytes / 1e6;
        line["read_gbs"] = median_of(times.read_gbs);
        line["ms_bound"] = bytes / (median_of(times.read_gbs) * 1e9) * 1e3;
        line["bound_ratio"] = median_of(ratio);
        if (mt) line["bound_ratio_steps"] = median_of(ratio_steps);  // the encoder's time left out
      }
      emit(line);
      if (!mt) continue;
      BeamSearchOptions beam;
      beam.beam = 4;
      beam.max_len_a = 0;
      beam.max_len_b = kDecodeTokens;
      beam.min_len = kDecodeTokens;
      const std::vector<int64_t> lengths(B, kDecodeSourceLen);
      const double beamed = median_seconds(warmup, reps, [&] {
        TranslationScorer scorer(*mt, source);
        beam_search(scorer, lengths, beam);
      });
      rows.push_back(decode_line(w, o, "beam", B, 4, kDecodeTokens + 1, beamed, warmup, reps));
      emit(rows.back());
    }
  }
  if (!o.quiet) {
    std::printf("\n%-24s %-7s %6s %5s %11s %12s %10s %12s\n", "decode workload", "mode", "batch",
                "beam", "ms/step", "sentences/s", "ms bound", "x bound");
    for (const nlohmann::json& r : rows) {
      std::printf("%-24s %-7s %6lld %5lld %11.2f %12.1f", r["workload"].get<std::string>().c_str(),
                  r["mode"].get<std::string>().c_str(), r["batch"].get<long long>(),
                  r["beam"].get<long long>(), r["ms_per_step"].get<double>(),
                  r["sentences_per_s"].get<double>());
      if (r.contains("bound_ratio")) {
        std::printf(" %10.2f %11.2fx", r["ms_bound"].get<double>(), r["bound_ratio"].get<double>());
        if (r.contains("bound_ratio_steps"))
          std::printf(" (%.2fx without the encoder)", r["bound_ratio_steps"].get<double>());
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace payless::bench
