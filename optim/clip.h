// Gradient post-processing between backward() and Optimizer::step(): scaling by the token count
// (spec §6.6) and clipping by the global L2 norm. Parameters without a gradient are ignored.
//
// What this is not: no per-parameter clipping, no value clipping, and no decision about
// non-finite gradients -- clip_grad_norm returns the norm and the trainer decides (skip the
// update, lower the loss scale, stop).
#pragma once

#include <vector>

#include "optim/optimizer.h"

namespace payless {

// Every gradient ← factor · gradient. fairseq divides the summed loss's gradients by the number
// of target tokens in the update (factor = 1 / sample_size) before clipping and stepping.
void multiply_grads(const NamedTensors& params, double factor);

// Returns the global norm of the gradients BEFORE clipping, ‖g‖ = sqrt(Σ_params Σ_i g_i²),
// summed in double. If max_norm > 0 and ‖g‖ > max_norm, every gradient is scaled by
// max_norm / (‖g‖ + 1e-6) (fairseq/PyTorch's coefficient). max_norm <= 0 means no clipping
// (fairseq --clip-norm 0); the norm is still computed and returned. A non-finite norm is returned
// as is and the gradients are left untouched.
double clip_grad_norm(const NamedTensors& params, double max_norm);
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace payless
