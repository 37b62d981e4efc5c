// The shared bookkeeping of optim/optimizer.h: parameter checks, the step loop, and the checkpoint
// state checks that every update rule reuses.
#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/autograd.h"
#include "core/error.h"

namespace payless {

namespace {

void check_lr(double lr, const char* where) {
  if (!std::isfinite(lr) || lr < 0) fail(where, ": the learning rate must be finite and >= 0, got ", lr);
}

}  // namespace

Optimizer::Optimizer(NamedTensors params, double lr) : params_(std::move(params)), lr_(lr) {
  check_lr(lr, "optimizer");
  std::set<std::string> names;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, tensor] = params_[i];
    if (name.empty()) fail("optimizer: parameter #", i, " has an empty name");
    if (!tensor.defined()) fail("optimizer: parameter '", name, "' is an undefined tensor");
    if (!names.insert(name).second) fail("optimizer: parameter name '", name, "' appears twice");
    // The same tensor under two names would be updated twice per step.
    for (size_t j = 0; j < i; ++j)
      if (params_[j].second.same_as(tensor))
        fail("optimizer: parameters '", params_[j].first, "' and '", name,
             "' are the same tensor (pass shared weights once)");
  }
  param_steps_.assign(params_.size(), 0);
}

void Optimizer::step() {
  NoGrad no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    if (!p.has_grad()) continue;  // not used in this update: values and state stay as they are
    update(i, p.grad_ptr(), ++param_steps_[i]);
  }
  ++updates_;
}

void Optimizer::zero_grad() {
  for (auto& [name, tensor] : params_) tensor.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_lr(lr, "optimizer.set_lr");
  lr_ = lr;
}

std::vector<Tensor> Optimizer::make_state(const std::string& kind) const {
  std::vector<Tensor> buffers;
  buffers.reserve(params_.size());
  for (const auto& [name, tensor] : params_)
    buffers.push_back(Tensor::zeros(tensor.shape()).set_name("optimizer." + kind + "." + name));
  return buffers;
}

void Optimizer::append_state(NamedTensors& out, const std::string& kind,
                             const std::vector<Tensor>& buffers) const {
  for (size_t i = 0; i < params_.size(); ++i)
    out.emplace_back("optimizer." + kind + "." + params_[i].first, buffers[i]);
}

nlohmann::json Optimizer::state_json() const {
  nlohmann::json out;
  out["type"] = type();
  out["lr"] = lr_;
  out["updates"] = updates_;
  nlohmann::json steps = nlohmann::json::object();
  for (size_t i = 0; i < params_.size(); ++i) steps[params_[i].first] = param_steps_[i];
  out["param_steps"] = steps;
  save_hyper(out);
  return out;
}

double Optimizer::json_number(const nlohmann::json& in, const char* key) {
  auto it = in.find(key);
  if (it == in.end()) fail("optimizer state: key '", key, "' is missing");
  if (!it->is_number()) fail("optimizer state: key '", key, "' must be a number, got ", it->dump());
  return it->get<double>();
}

namespace {

int64_t json_count(const nlohmann::json& value, const std::string& what) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0)
    fail("optimizer state: ", what, " must be a non-negative integer, got ", value.dump());
  return value.get<int64_t>();
}

}  // namespace

void Optimizer::load_state(const NamedTensors& tensors, const nlohmann::json& state) {
  // 1. Check the json (nothing is assigned until every check has passed).
  if (!state.is_object()) fail("optimizer state: expected a JSON object, got ", state.dump());
  auto type_it = state.find("type");
  if (type_it == state.end() || !type_it->is_string() || type_it->get<std::string>() != type())
    fail("optimizer state: saved by optimizer type ",
         type_it == state.end() ? std::string("(missing)") : type_it->dump(), ", but this is '",
         type(), "'");
  double lr = json_number(state, "lr");
  check_lr(lr, "optimizer state 'lr'");
  if (!state.contains("updates")) fail("optimizer state: key 'updates' is missing");
  int64_t updates = json_count(state["updates"], "'updates'");
  auto steps_it = state.find("param_steps");
  if (steps_it == state.end() || !steps_it->is_object())
    fail("optimizer state: key 'param_steps' is missing or not an object");
  std::vector<int64_t> param_steps(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    auto it = steps_it->find(name);
    if (it == steps_it->end())
      fail("optimizer state: 'param_steps' has no entry for parameter '", name, "'");
    param_steps[i] = json_count(*it, "'param_steps." + name + "'");
  }
  if (steps_it->size() != params_.size())
    for (auto it = steps_it->begin(); it != steps_it->end(); ++it) {
      bool known = false;
      for (const auto& p : params_) known = known || p.first == it.key();
      if (!known)
        fail("optimizer state: 'param_steps' names parameter '", it.key(),
             "', which this optimizer does not have");
    }

  // 2. Check the tensors: every expected one present with its shape, no unknown "optimizer.*".
  NamedTensors expected = state_tensors();
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, tensor] : tensors) {
    if (name.rfind("optimizer.", 0) != 0) continue;  // model weights etc.
    if (!given.emplace(name, &tensor).second) fail("optimizer state: tensor '", name, "' appears twice");
  }
  for (const auto& [name, buffer] : expected) {
    auto it = given.find(name);
    if (it == given.end())
      fail("optimizer state: no tensor '", name, "' ", buffer.shape().str(), " in the checkpoint");
    if (!it->second->defined() || it->second->shape() != buffer.shape())
      fail("optimizer state: tensor '", name, "' has shape ",
           it->second->defined() ? it->second->shape().str() : std::string("(undefined)"),
           ", expected ", buffer.shape().str());
  }
  if (given.size() != expected.size())
    for (const auto& [name, tensor] : given) {
      bool known = false;
      for (const auto& e : expected) known = known || e.first == name;
      if (!known)
        fail("optimizer state: tensor '", name, "' does not belong to this optimizer (",
             "a parameter was renamed or removed, or the optimizer settings changed)");
    }

  // 3. Hyper-parameters: the subclass validates, then assigns.
  load_hyper(state);

  // 4. Assign.
  lr_ = lr;
  updates_ = updates;
  param_steps_ = param_steps;
  for (auto& [name, buffer] : expected) {
    const Tensor& source = *given.at(name);
    std::copy(source.data(), source.data() + source.numel(), buffer.data());
  }
}

}  // namespace payless
