// See optim/clip.h.
#include "optim/clip.h"

#include <cmath>

#include "core/error.h"

namespace payless {

namespace {

// Σ x_i² in double. Eight independent partial sums let the compiler keep several additions in
// flight (and use SIMD) without -ffast-math; the order is fixed, so the result is reproducible.
double sum_of_squares(const float* x, int64_t n) {
  double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) partial[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) partial[0] += static_cast<double>(x[i]) * x[i];
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void scale(const Tensor& t, float factor) {
  float* g = t.grad_ptr();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) g[i] *= factor;
}

double clip(const std::vector<const Tensor*>& params, double max_norm) {
  double total = 0;
  for (const Tensor* p : params)
    if (p->has_grad()) total += sum_of_squares(p->grad_ptr(), p->numel());
  const double norm = std::sqrt(total);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const float coefficient = static_cast<float>(max_norm / (norm + 1e-6));
    for (const Tensor* p : params)
      if (p->has_grad()) scale(*p, coefficient);
  }
  return norm;
}

}  // namespace

void multiply_grads(const NamedTensors& params, double factor) {
  if (!std::isfinite(factor)) fail("multiply_grads: the factor must be finite, got ", factor);
  for (const auto& [name, tensor] : params)
    if (tensor.has_grad()) scale(tensor, static_cast<float>(factor));
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  std::vector<const Tensor*> tensors;
  tensors.reserve(params.size());
  for (const auto& [name, tensor] : params) tensors.push_back(&tensor);
  return clip(tensors, max_norm);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  std::vector<const Tensor*> tensors;
  tensors.reserve(params.size());
  for (const Tensor& tensor : params) tensors.push_back(&tensor);
  return clip(tensors, max_norm);
}

}  // namespace payless
