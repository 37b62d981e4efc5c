// Stochastic gradient descent with momentum, Nesterov momentum and (coupled) weight decay, with
// PyTorch's torch.optim.SGD semantics. A baseline and a sanity check next to Adam (adam.h); the
// paper's recipes use Adam.
#pragma once

#include "optim/optimizer.h"

namespace payless {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;      // μ; 0 = plain SGD, no state
  double dampening = 0.0;     // d; must be 0 with Nesterov
  double weight_decay = 0.0;  // λ, added to the gradient (L2), unlike Adam's decoupled decay
  bool nesterov = false;      // needs momentum > 0
};

class Sgd : public Optimizer {
 public:
  Sgd(NamedTensors params, const SgdOptions& options = {});

  const SgdOptions& options() const { return options_; }  // options().lr is the constructor's lr
  // "optimizer.momentum_buffer.<name>" when momentum > 0; nothing otherwise.
  NamedTensors state_tensors() const override;

 protected:
  void update(size_t i, const float* grad, int64_t step) override;
  const char* type() const override { return "sgd"; }
  void save_hyper(nlohmann::json& out) const override;
  void load_hyper(const nlohmann::json& in) override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_buffer_;  // b, one per parameter (empty when momentum == 0)
};

}  // namespace payless
