// See layers/module.h.
#include "layers/module.h"

#include "core/error.h"

namespace payless {

Tensor& Module::register_parameter(const std::string& name, Tensor& parameter) {
  if (!parameter.defined()) fail("register_parameter: '", name, "' is an undefined tensor");
  for (const auto& p : parameters_)
    if (p.first == name) fail("register_parameter: '", name, "' is registered twice");
  parameter.set_requires_grad(true);
  parameters_.push_back({name, &parameter});
  return parameter;
}

void Module::register_module(const std::string& name, Module& child) {
  for (const auto& c : children_)
    if (c.first == name) fail("register_module: '", name, "' is registered twice");
  children_.push_back({name, &child});
}

void Module::collect(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, tensor] : parameters_) {
    // A tensor shared by two modules (tied embeddings) is one parameter, under its first name.
    bool seen = false;
    for (const auto& earlier : out) seen = seen || earlier.second.same_as(*tensor);
    if (!seen) out.push_back({prefix + name, *tensor});
  }
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::pack_parameters() { pack_storages(parameters()); }

void Module::name_parameters(const std::string& prefix) {
  for (auto& [name, t] : named_parameters()) t.set_name(prefix + name);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

}  // namespace payless
