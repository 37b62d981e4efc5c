// SGD as torch.optim.SGD computes it. See optim/sgd.h.
#include "optim/sgd.h"

#include <cmath>

#include "core/error.h"

namespace payless {

namespace {

void check_options(const SgdOptions& o, const char* where) {
  if (!(o.momentum >= 0) || !std::isfinite(o.momentum))
    fail(where, ": momentum must be finite and >= 0, got ", o.momentum);
  if (!(o.dampening >= 0) || !std::isfinite(o.dampening))
    fail(where, ": dampening must be finite and >= 0, got ", o.dampening);
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    fail(where, ": weight_decay must be finite and >= 0, got ", o.weight_decay);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail(where, ": nesterov needs momentum > 0 and dampening 0 (got momentum ", o.momentum,
         ", dampening ", o.dampening, ")");
}

}  // namespace

Sgd::Sgd(NamedTensors params, const SgdOptions& options)
    : Optimizer(std::move(params), options.lr), options_(options) {
  check_options(options, "sgd");
  if (options.momentum != 0) momentum_buffer_ = make_state("momentum_buffer");
}

// With gradient g, lr = lr() and this parameter's update count τ:
//   g ← g + λ·θ                                  (weight decay, if λ ≠ 0)
//   if μ ≠ 0:
//     b ← g                       on τ = 1       (the buffer starts as the first gradient, undamped)
//     b ← μ·b + (1 − d)·g         afterwards
//     g ← g + μ·b  if Nesterov,  else g ← b
//   θ ← θ − lr·g
void Sgd::update(size_t i, const float* grad, int64_t step) {
  Tensor& p = params_[i].second;
  float* theta = p.data();
  const int64_t n = p.numel();
  const float lr = static_cast<float>(this->lr());
  const float wd = static_cast<float>(options_.weight_decay);
  const float mu = static_cast<float>(options_.momentum);
  const float undamped = static_cast<float>(1.0 - options_.dampening);
  if (options_.momentum == 0) {
    for (int64_t k = 0; k < n; ++k) theta[k] -= lr * (grad[k] + wd * theta[k]);
    return;
  }
  float* b = momentum_buffer_[i].data();
  const bool first = step == 1;
  const bool nesterov = options_.nesterov;
  for (int64_t k = 0; k < n; ++k) {
    float g = grad[k] + wd * theta[k];
    b[k] = first ? g : mu * b[k] + undamped * g;
    theta[k] -= lr * (nesterov ? g + mu * b[k] : b[k]);
  }
}

NamedTensors Sgd::state_tensors() const {
  NamedTensors out;
  if (!momentum_buffer_.empty()) append_state(out, "momentum_buffer", momentum_buffer_);
  return out;
}

void Sgd::save_hyper(nlohmann::json& out) const {
  out["momentum"] = options_.momentum;
  out["dampening"] = options_.dampening;
  out["weight_decay"] = options_.weight_decay;
  out["nesterov"] = options_.nesterov;
}

void Sgd::load_hyper(const nlohmann::json& in) {
  SgdOptions loaded = options_;
  loaded.momentum = json_number(in, "momentum");
  loaded.dampening = json_number(in, "dampening");
  loaded.weight_decay = json_number(in, "weight_decay");
  auto nesterov = in.find("nesterov");
  if (nesterov == in.end() || !nesterov->is_boolean())
    fail("optimizer state: key 'nesterov' must be true or false");
  loaded.nesterov = nesterov->get<bool>();
  check_options(loaded, "optimizer state");
  // The buffers exist only with momentum: a checkpoint with(out) momentum cannot fill an
  // optimizer without (with) it.
  if ((loaded.momentum == 0) != (options_.momentum == 0))
    fail("optimizer state: saved with momentum ", loaded.momentum,
         " but this optimizer has momentum ", options_.momentum,
         " (one of them keeps no momentum buffers)");
  options_ = loaded;
}

}  // namespace payless
