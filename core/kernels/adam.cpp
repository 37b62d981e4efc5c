// See core/kernels/adam.h.
#include "core/kernels/adam.h"

#include <cmath>

#include "core/parallel.h"

namespace payless::kernels {

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const AdamScalars& s) {
  // The decay branch is hoisted out of the loop (one loop each) so both stay branch-free and
  // vectorise. With decay == 0 the subtraction would still be exact (θ − 0·θ = θ for finite θ),
  // but skipping it keeps an infinite θ from turning into NaN through 0·∞.
  if (s.decay != 0.0f) {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
    for (int64_t i = 0; i < n; ++i) {
      float g = grad[i];
      float m = s.beta1 * exp_avg[i] + s.one_minus_beta1 * g;
      float v = s.beta2 * exp_avg_sq[i] + s.one_minus_beta2 * (g * g);
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      float p = param[i] - s.decay * param[i];
      param[i] = p - s.step_size * (m / (std::sqrt(v) + s.eps));
    }
  } else {
#pragma omp parallel for schedule(static) if (n > 4 * kParallelMinWork)
    for (int64_t i = 0; i < n; ++i) {
      float g = grad[i];
      float m = s.beta1 * exp_avg[i] + s.one_minus_beta1 * g;
      float v = s.beta2 * exp_avg_sq[i] + s.one_minus_beta2 * (g * g);
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      param[i] -= s.step_size * (m / (std::sqrt(v) + s.eps));
    }
  }
}

}  // namespace payless::kernels
