// Reading the PyTorch golden files in tests/fixtures/*.json and comparing a module with one.
//
// The files are written by tests/fixtures/make_fixtures_*.py (layout in tests/fixtures/
// fixture_io.py): config, inputs, masks, params, r, output, and grads of sum(output * r) for every
// input and parameter, each tensor as {"shape": [...], "data": [...]}. A test builds the module
// from "config", then
//
//   auto inputs = inputs_of(fixture);
//   compare_with_fixture(fixture, module, inputs, [&] { return module.forward(inputs.at("x")); });
//
// Header-only: CMake compiles only gradcheck.cpp and catch_main.cpp from tests/support.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"
#include "layers/module.h"
#include "tests/support/compare.h"

namespace payless::testing {

// tests/fixtures/<name>.json, parsed.
inline nlohmann::json load_fixture(const std::string& name) {
  const std::string path = std::string(PAYLESS_SOURCE_DIR) + "/tests/fixtures/" + name + ".json";
  std::ifstream in(path);
  INFO("fixture " << path << " (written by tests/fixtures/make_fixtures_*.py)");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

inline Tensor tensor_from(const nlohmann::json& j) {
  return Tensor::from_data(Shape(j.at("shape").get<std::vector<int64_t>>()),
                           j.at("data").get<std::vector<float>>());
}

// The fixture's "inputs" by name.
inline std::map<std::string, Tensor> inputs_of(const nlohmann::json& fixture) {
  std::map<std::string, Tensor> inputs;
  for (auto& [name, value] : fixture.at("inputs").items()) inputs[name] = tensor_from(value);
  return inputs;
}

// Copies every fixture parameter into the module by name; both sides must hold the same names
// and shapes.
inline void load_params(Module& m, const nlohmann::json& params) {
  NamedTensors ours = m.named_parameters();
  REQUIRE(ours.size() == params.size());
  for (auto& [name, t] : ours) {
    INFO("parameter " << name);
    REQUIRE(params.contains(name));
    Tensor value = tensor_from(params.at(name));
    REQUIRE(value.shape() == t.shape());
    std::copy(value.data(), value.data() + value.numel(), t.data());
  }
}

// Loads the fixture's parameters into m, runs out = f() in eval mode (the fixtures have no
// dropout), compares the output (<= 1e-5), then backward with r and compares the gradient of
// every input and parameter (<= 1e-4).
inline void compare_with_fixture(const nlohmann::json& fixture, Module& m,
                                 std::map<std::string, Tensor>& inputs, const std::function<Tensor()>& f) {
  load_params(m, fixture.at("params"));
  m.eval();
  m.zero_grad();
  for (auto& [name, t] : inputs) t.set_requires_grad(true).zero_grad();
  Tensor out = f();
  CHECK(max_abs_diff(out, tensor_from(fixture.at("output"))) <= 1e-5f);
  backward(out, tensor_from(fixture.at("r")));
  const nlohmann::json& grads = fixture.at("grads");
  for (auto& [name, t] : inputs) {
    INFO("gradient of input " << name);
    REQUIRE(t.has_grad());
    CHECK(max_abs_diff(t.grad(), tensor_from(grads.at(name))) <= 1e-4f);
  }
  for (auto& [name, t] : m.named_parameters()) {
    INFO("gradient of parameter " << name);
    REQUIRE(t.has_grad());
    CHECK(max_abs_diff(t.grad(), tensor_from(grads.at(name))) <= 1e-4f);
  }
}

}  // namespace payless::testing
