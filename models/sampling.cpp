// See models/sampling.h.
#include "models/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/autograd.h"

namespace payless {

int32_t choose_token(const float* logits, int64_t V, const SamplingOptions& options, uint64_t draw) {
  auto allowed = [&](int64_t v) {
    return options.allow_special || !(v == kBosId || v == kPadId || v == kUnkId);
  };
  if (options.greedy) {
    int64_t best = -1;
    for (int64_t v = 0; v < V; ++v)
      if (allowed(v) && (best < 0 || logits[v] > logits[best])) best = v;
    return static_cast<int32_t>(best);
  }
  if (!(options.temperature > 0)) fail("sampling: temperature must be positive, got ", options.temperature);
  std::vector<int64_t> candidates;
  for (int64_t v = 0; v < V; ++v)
    if (allowed(v)) candidates.push_back(v);
  if (options.top_k > 0 && options.top_k < static_cast<int64_t>(candidates.size())) {
    // Ties broken by id so the candidate set never depends on the sort's whims.
    std::partial_sort(candidates.begin(), candidates.begin() + options.top_k, candidates.end(),
                      [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    candidates.resize(options.top_k);
    std::sort(candidates.begin(), candidates.end());
  }
  // Softmax of logits/temperature over the candidates, in double, then invert the CDF.
  double top = -INFINITY;
  for (int64_t v : candidates) top = std::max(top, double(logits[v]));
  std::vector<double> weights;
  double total = 0;
  for (int64_t v : candidates) {
    weights.push_back(std::exp((logits[v] - top) / options.temperature));
    total += weights.back();
  }
  const double u = uniform01(options.seed, 0, draw) * total;
  double running = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    running += weights[i];
    if (u < running) return static_cast<int32_t>(candidates[i]);
  }
  return static_cast<int32_t>(candidates.back());
}

std::vector<int32_t> generate(const LanguageModel& model, const std::vector<int32_t>& prompt,
                              const SamplingOptions& options) {
  NoGrad no_grad;
  const Decoder& decoder = model.decoder;
  if (model.is_training()) fail("generate: put the model in eval mode first");
  DecoderState state = decoder.start_state();
  std::vector<int32_t> fed = {kEosId};
  fed.insert(fed.end(), prompt.begin(), prompt.end());
  Tensor logits;
  for (int32_t token : fed) logits = decoder.step({token}, Tensor(), Tensor(), state);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    int32_t next = choose_token(logits.data(), decoder.vocab_size(), options, i);
    out.push_back(next);
    if (next == kEosId && options.stop_at_eos) break;
    if (i + 1 < options.max_new_tokens) logits = decoder.step({next}, Tensor(), Tensor(), state);
  }
  return out;
}

std::vector<int32_t> generate_full_forward(LanguageModel& model, const std::vector<int32_t>& prompt,
                                           const SamplingOptions& options) {
  NoGrad no_grad;
  if (model.is_training()) fail("generate: put the model in eval mode first");
  std::vector<int32_t> prefix = {kEosId};
  prefix.insert(prefix.end(), prompt.begin(), prompt.end());
  std::vector<int32_t> out;
  const int64_t V = model.decoder.vocab_size();
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t T = static_cast<int64_t>(prefix.size());
    Tensor logits = model.decoder.forward(IdTensor(Shape{1, T}, prefix));  // (1, T, V)
    int32_t next = choose_token(logits.data() + (T - 1) * V, V, options, i);
    out.push_back(next);
    if (next == kEosId && options.stop_at_eos) break;
    prefix.push_back(next);
  }
  return out;
}

}  // namespace payless
