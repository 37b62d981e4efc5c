// Adam as in fairseq/optim/adam.py (spec §6.2). See optim/adam.h.
#include "optim/adam.h"

#include <cmath>

#include "core/error.h"
#include "core/kernels/adam.h"

namespace payless {

namespace {

void check_options(double beta1, double beta2, double eps, double weight_decay, const char* where) {
  if (!(beta1 >= 0 && beta1 < 1)) fail(where, ": beta1 must be in [0, 1), got ", beta1);
  if (!(beta2 >= 0 && beta2 < 1)) fail(where, ": beta2 must be in [0, 1), got ", beta2);
  if (!(eps >= 0) || !std::isfinite(eps)) fail(where, ": eps must be finite and >= 0, got ", eps);
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
    fail(where, ": weight_decay must be finite and >= 0, got ", weight_decay);
}

}  // namespace

Adam::Adam(NamedTensors params, const AdamOptions& options)
    : Optimizer(std::move(params), options.lr), options_(options) {
  check_options(options.beta1, options.beta2, options.eps, options.weight_decay, "adam");
  exp_avg_ = make_state("exp_avg");
  exp_avg_sq_ = make_state("exp_avg_sq");
}

// With gradient g, this parameter's update count τ (1 on its first update) and lr = lr():
//   m ← β1·m + (1−β1)·g
//   v ← β2·v + (1−β2)·g²
//   step_size = lr · sqrt(1 − β2^τ) / (1 − β1^τ)      (both bias corrections folded into one scalar)
//   θ ← θ − wd·lr·θ                                     (only if wd ≠ 0)
//   θ ← θ − step_size · m / (sqrt(v) + ε)               (ε on the UN-corrected sqrt(v))
// Note that this differs from "textbook" Adam, m̂/(sqrt(v̂) + ε): here ε is effectively scaled by
// sqrt(1 − β2^τ), which matters early in training and for tiny gradients.
void Adam::update(size_t i, const float* grad, int64_t step) {
  const double lr = this->lr();
  const double tau = static_cast<double>(step);
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, tau);
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, tau);
  kernels::AdamScalars s;
  s.beta1 = static_cast<float>(options_.beta1);
  s.one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
  s.beta2 = static_cast<float>(options_.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  s.eps = static_cast<float>(options_.eps);
  s.decay = static_cast<float>(options_.weight_decay * lr);
  // With β1 = 0 the first correction is 1 − 0^τ = 1, never 0, so this division is always safe.
  s.step_size = static_cast<float>(lr * std::sqrt(bias_correction2) / bias_correction1);
  Tensor& p = params_[i].second;
  kernels::adam_update(p.data(), grad, exp_avg_[i].data(), exp_avg_sq_[i].data(), p.numel(), s);
}

NamedTensors Adam::state_tensors() const {
  NamedTensors out;
  append_state(out, "exp_avg", exp_avg_);
  append_state(out, "exp_avg_sq", exp_avg_sq_);
  return out;
}

void Adam::save_hyper(nlohmann::json& out) const {
  out["betas"] = {options_.beta1, options_.beta2};
  out["eps"] = options_.eps;
  out["weight_decay"] = options_.weight_decay;
}

void Adam::load_hyper(const nlohmann::json& in) {
  auto betas = in.find("betas");
  if (betas == in.end() || !betas->is_array() || betas->size() != 2 || !(*betas)[0].is_number() ||
      !(*betas)[1].is_number())
    fail("optimizer state: key 'betas' must be an array of two numbers");
  double beta1 = (*betas)[0].get<double>(), beta2 = (*betas)[1].get<double>();
  double eps = json_number(in, "eps");
  double weight_decay = json_number(in, "weight_decay");
  check_options(beta1, beta2, eps, weight_decay, "optimizer state");
  options_.beta1 = beta1;
  options_.beta2 = beta2;
  options_.eps = eps;
  options_.weight_decay = weight_decay;
}

}  // namespace payless
