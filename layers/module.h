// Module: the base of every layer and model. It knows its parameters and children by name, so
// that `decoder.layers.2.conv.weight_linear.weight` is both what a user reads in an error and the
// key in a checkpoint (names follow the reference implementation, spec §4.9).
//
// A Module is a plain class: parameters are Tensor members, children are members (or
// unique_ptrs in a vector, for stacks of layers), and the constructor registers each once:
//
//   struct FeedForward : Module {
//     Linear fc1, fc2;
//     FeedForward(int64_t d, int64_t f) : fc1(d, f), fc2(f, d) {
//       register_module("fc1", fc1);
//       register_module("fc2", fc2);
//     }
//   };
//
// Registration stores pointers to the members, so a Module is neither copyable nor movable.
// What is not here: the math of any layer (layers/*.h), initialisation (each layer does its own
// from the spec), saving (core/serialize.h writes what named_parameters() returns).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace payless {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth first in registration order, with
  // dotted names. The order is stable, which the optimizer and checkpoints rely on. A tensor
  // registered by two modules (tied embeddings) is listed once, under its first name.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  // Gives every parameter its full dotted name (prefix + name), so that errors about a tensor
  // say which one. Models call this once at the end of their constructor.
  void name_parameters(const std::string& prefix = "");
  // Moves every parameter into one contiguous block on 2 MiB pages, in the order above (see
  // pack_storages in core/tensor.h): decoding reads all weights once per step, and reads them
  // 1.6-1.9 times as fast this way. build_model calls it; call it again after adding parameters.
  void pack_parameters();

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  // Registers a member tensor as a parameter (requires_grad is set). Returns it for chaining.
  Tensor& register_parameter(const std::string& name, Tensor& parameter);
  void register_module(const std::string& name, Module& child);

 private:
  void collect(const std::string& prefix, NamedTensors& out) const;
  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

}  // namespace payless
