// Optimizer: the interface every update rule in optim/ implements (Adam in adam.h, SGD in sgd.h).
//
// What this is: the bookkeeping shared by all update rules -- the named parameters, the learning
// rate, how many updates each parameter has received, zero_grad(), and saving/loading the state
// for checkpoints. What this is not: no learning-rate schedule (schedule.h computes the rate and
// the trainer calls set_lr), no clipping or gradient normalisation (clip.h), no file I/O (the
// checkpoint code in core/ writes what state_tensors() and state_json() return).
//
// One training update, in the order fairseq uses (spec §6.6):
//   loss (a sum over tokens) -> backward() -> multiply_grads(params, 1/sample_size)
//   -> clip_grad_norm(params, max_norm) -> set_lr(schedule.lr_at(updates done)) -> step()
//   -> zero_grad()
//
// A parameter without a gradient (it took no part in this update's forward pass) is skipped by
// step(): its values, its moment buffers and its own update count stay as they were. That count
// is per parameter, so a parameter's first real update is bias-corrected as a first update even
// if the others have had many (as in fairseq/PyTorch, where the step count lives in the
// per-parameter state).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace payless {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  // `params` are handles: the optimizer updates the very tensors the model holds. Names must be
  // unique and non-empty; they key the state in checkpoints.
  Optimizer(NamedTensors params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient, under NoGrad.
  void step();
  // Drops every parameter's gradient buffer (the next backward starts from zero).
  void zero_grad();

  void set_lr(double lr);  // finite and >= 0
  double lr() const { return lr_; }

  const NamedTensors& params() const { return params_; }
  // Number of step() calls, and how many of them updated parameter i (it had a gradient).
  int64_t updates() const { return updates_; }
  int64_t param_steps(size_t i) const { return param_steps_[i]; }

  // ---- Checkpoint state ------------------------------------------------------------------------
  // The per-element state as named tensors ("optimizer.exp_avg.<param name>", ...). They share
  // storage with the optimizer: copy them (clone_data) if you need a snapshot.
  virtual NamedTensors state_tensors() const = 0;
  // Everything else: {"type", "lr", "updates", "param_steps": {name: count}, hyper-parameters}.
  nlohmann::json state_json() const;
  // Restores both. `tensors` may hold other entries (e.g. the model's weights); only names that
  // start with "optimizer." are read, and each must be one this optimizer expects. Every name,
  // shape and key is checked before anything is changed, and an error names the offending tensor
  // or key. The saved hyper-parameters and lr replace the constructor's, as with PyTorch's
  // load_state_dict; build a fresh optimizer without loading to change them.
  void load_state(const NamedTensors& tensors, const nlohmann::json& state);

 protected:
  // One update of parameter i, whose gradient is `grad` (same numel as the parameter); `step` is
  // this parameter's update count including this one (τ = 1 on its first update).
  virtual void update(size_t i, const float* grad, int64_t step) = 0;
  // "adam", "sgd": checked on load so an SGD state is never read into Adam.
  virtual const char* type() const = 0;
  // The subclass's hyper-parameters, written into / read back from state_json().
  virtual void save_hyper(nlohmann::json& out) const = 0;
  // Must validate everything first, then assign; called after the base has checked its own keys.
  virtual void load_hyper(const nlohmann::json& in) = 0;

  // For subclasses: zero state buffers shaped like each parameter, named "optimizer.<kind>.<name>".
  std::vector<Tensor> make_state(const std::string& kind) const;
  void append_state(NamedTensors& out, const std::string& kind,
                    const std::vector<Tensor>& buffers) const;

  // Reads a number from the state json, naming the key if it is missing or not a number.
  static double json_number(const nlohmann::json& in, const char* key);

  NamedTensors params_;
  double lr_;
  int64_t updates_ = 0;
  std::vector<int64_t> param_steps_;
};

}  // namespace payless
