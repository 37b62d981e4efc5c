// Adam exactly as fairseq applies it (spec §6.2), including its two quirks: ε is added to the
// UN-corrected sqrt(v), and weight decay is decoupled (θ shrinks by wd·lr before the Adam step,
// for every parameter, biases and LayerNorm gains included).
//
// What this is not: no AMSGrad, no per-group settings. The element loop is in
// core/kernels/adam.{h,cpp}; the step count and bias correction are here.
#pragma once

#include "optim/optimizer.h"

namespace payless {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;    // every recipe of the paper uses (0.9, 0.98); these are fairseq's defaults
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class Adam : public Optimizer {
 public:
  Adam(NamedTensors params, const AdamOptions& options = {});

  const AdamOptions& options() const { return options_; }  // options().lr is the constructor's lr
  NamedTensors state_tensors() const override;

 protected:
  void update(size_t i, const float* grad, int64_t step) override;
  const char* type() const override { return "adam"; }
  void save_hyper(nlohmann::json& out) const override;
  void load_hyper(const nlohmann::json& in) override;

 private:
  AdamOptions options_;
  std::vector<Tensor> exp_avg_;     // m, one per parameter, same shape
  std::vector<Tensor> exp_avg_sq_;  // v, one per parameter, same shape
};

}  // namespace payless
