// The fused Adam update: one pass over a parameter, its gradient and its two moment buffers.
//
// What this is: a plain function on raw float pointers, so optim/adam.cpp (which owns the
// hyper-parameters, the step count and the bias correction, spec §6.2) stays free of OpenMP, and
// the loop can be tested without a Tensor. What this is not: no bias correction, no schedule,
// no step counting -- the caller folds all of that into the scalars below.
//
// The loop is its own reference: each element is independent, so there is nothing to block or
// reorder, and the multi-threaded run gives the same bits as the single-threaded one (each
// element is computed by the same instructions whichever thread runs it). Threads are used only
// for large tensors (embeddings, output projections), where waking them pays off.
#pragma once

#include <cstdint>

namespace payless::kernels {

// Per-step scalars, computed by the caller in double and rounded once to float.
struct AdamScalars {
  float beta1;            // β1
  float one_minus_beta1;  // 1 − β1
  float beta2;            // β2
  float one_minus_beta2;  // 1 − β2
  float eps;              // ε, added to the un-corrected sqrt(v)
  float decay;            // wd · lr: the decoupled weight decay factor (0 = none)
  float step_size;        // lr · sqrt(1 − β2^τ) / (1 − β1^τ)
};

// In place, for i in [0, n):
//   m[i] ← β1·m[i] + (1−β1)·g[i]
//   v[i] ← β2·v[i] + (1−β2)·g[i]²
//   θ[i] ← θ[i] − decay·θ[i]                                  (skipped when decay == 0)
//   θ[i] ← θ[i] − step_size · m[i] / (sqrt(v[i]) + ε)
void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const AdamScalars& s);

}  // namespace payless::kernels
