// Tests for the convolution kernels in core/kernels/conv.h (tag [conv]).
//
// Three kinds of truth: (1) every fast kernel equals its plain reference loop at odd sizes, causal
// and centred, with 1 and 2 threads, including the accumulate contract of the backward kernels;
// (2) the reference backward loops equal finite differences of the reference forward, which shows
// the formulas themselves are right; (3) one-step decoding equals the full causal forward.
// What is not here: the softmax, DropConnect and the kernel generator (the ops' tests cover them).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernels/conv.h"
#include "core/parallel.h"
#include "tests/support/compare.h"

namespace {

using namespace payless::kernels;
using namespace payless::testing;

struct ConvCase {
  int64_t B, T, C, H, K, P;
  std::string describe() const {
    std::ostringstream s;
    s << "B=" << B << " T=" << T << " C=" << C << " H=" << H << " K=" << K << " P=" << P;
    return s.str();
  }
};

// |got - want| <= rel · max(1, max|want|) for every element: relative to the array's scale, since
// single elements of a sum can be near zero after cancellation.
void require_close(const std::vector<float>& got, const std::vector<float>& want,
                   const std::string& what, double rel = 1e-5) {
  REQUIRE(got.size() == want.size());
  double scale = 1.0;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    if (err > worst) worst = err, worst_i = i;
  }
  INFO(what << ": worst error " << worst << " at " << worst_i << " (scale " << scale << ")");
  REQUIRE(worst <= rel * scale);
}

// The grid of sizes: single step, shorter than the kernel, longer; kernel widths 1..31 (even
// too); heads of 1..28 channels, some long enough for the register tiles (32 channels) with
// leftover channels, some shorter than one vector; batch 1..3; causal and centred padding.
std::vector<ConvCase> grid() {
  struct Channels {
    int64_t C, H;
  };
  const Channels channels[] = {{4, 1}, {8, 2}, {12, 4}, {28, 4}, {64, 1}, {80, 2}, {96, 2}};
  const int64_t Ks[] = {1, 3, 4, 7, 31};
  const int64_t Ts[] = {1, 2, 5, 33, 129};
  std::vector<ConvCase> cases;
  int64_t i = 0;
  for (int64_t K : Ks)
    for (int64_t T : Ts)
      for (const Channels& ch : channels)
        for (int64_t P : {K - 1, K / 2}) {
          const int64_t B = 1 + (i++ % 3);
          cases.push_back({B, T, ch.C, ch.H, K, P});
        }
  return cases;
}

struct Buffers {
  std::vector<float> x, a, w, gy;  // (B,T,C), (B,T,H,K), (H,K), (B,T,C)
};

Buffers random_buffers(const ConvCase& c, unsigned seed) {
  const size_t btc = size_t(c.B * c.T * c.C);
  return {random_values(btc, seed), random_values(size_t(c.B * c.T * c.H * c.K), seed + 1),
          random_values(size_t(c.H * c.K), seed + 2), random_values(btc, seed + 3)};
}

// Runs each fast kernel and its reference on the same inputs; the backward buffers start filled
// with random values so that a kernel assigning instead of adding fails.
void check_against_reference(const ConvCase& c, unsigned seed) {
  INFO(c.describe() << " threads=" << payless::num_threads());
  const int64_t B = c.B, T = c.T, C = c.C, H = c.H, K = c.K, P = c.P;
  const Buffers in = random_buffers(c, seed);
  const size_t btc = size_t(B * T * C), bthk = size_t(B * T * H * K), hk = size_t(H * K);
  std::vector<float> y(btc), y_ref(btc);

  dynamic_conv_forward(in.x.data(), in.a.data(), y.data(), B, T, C, H, K, P);
  dynamic_conv_forward_reference(in.x.data(), in.a.data(), y_ref.data(), B, T, C, H, K, P);
  require_close(y, y_ref, "dynamic forward");

  const std::vector<float> gx0 = random_values(btc, seed + 10), ga0 = random_values(bthk, seed + 11);
  std::vector<float> gx = gx0, ga = ga0, gx_ref = gx0, ga_ref = ga0;
  dynamic_conv_backward(in.x.data(), in.a.data(), in.gy.data(), gx.data(), ga.data(), B, T, C, H,
                        K, P);
  dynamic_conv_backward_reference(in.x.data(), in.a.data(), in.gy.data(), gx_ref.data(),
                                  ga_ref.data(), B, T, C, H, K, P);
  require_close(gx, gx_ref, "dynamic backward gx");
  require_close(ga, ga_ref, "dynamic backward ga");

  lightweight_conv_forward(in.x.data(), in.w.data(), y.data(), B, T, C, H, K, P);
  lightweight_conv_forward_reference(in.x.data(), in.w.data(), y_ref.data(), B, T, C, H, K, P);
  require_close(y, y_ref, "lightweight forward");

  const std::vector<float> gw0 = random_values(hk, seed + 12);
  std::vector<float> gw = gw0, gw_ref = gw0;
  gx = gx0, gx_ref = gx0;
  lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), gx.data(), gw.data(), B, T, C,
                            H, K, P);
  lightweight_conv_backward_reference(in.x.data(), in.w.data(), in.gy.data(), gx_ref.data(),
                                      gw_ref.data(), B, T, C, H, K, P);
  require_close(gx, gx_ref, "lightweight backward gx");
  require_close(gw, gw_ref, "lightweight backward gw");
}

}  // namespace

TEST_CASE("conv kernels equal the reference loops at odd sizes, 1 and 2 threads", "[conv]") {
  const std::vector<ConvCase> cases = grid();
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    unsigned seed = 100;
    for (const ConvCase& c : cases) check_against_reference(c, seed += 20);
  }
}

TEST_CASE("conv backward kernels add to the gradient buffers and skip null ones", "[conv]") {
  const ConvCase c{2, 37, 64, 2, 7, 6};
  const int64_t B = c.B, T = c.T, C = c.C, H = c.H, K = c.K, P = c.P;
  const Buffers in = random_buffers(c, 7);
  const size_t btc = size_t(B * T * C), bthk = size_t(B * T * H * K), hk = size_t(H * K);

  // From zero, each gradient alone (the other pointer null) ...
  std::vector<float> gx_only(btc, 0.0f), ga_only(bthk, 0.0f), gw_only(hk, 0.0f);
  dynamic_conv_backward(in.x.data(), in.a.data(), in.gy.data(), gx_only.data(), nullptr, B, T, C,
                        H, K, P);
  dynamic_conv_backward(in.x.data(), in.a.data(), in.gy.data(), nullptr, ga_only.data(), B, T, C,
                        H, K, P);
  lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), nullptr, gw_only.data(), B, T,
                            C, H, K, P);
  // ... then both together on top of pre-filled buffers: the result must be prefill + gradient.
  const std::vector<float> gx0 = random_values(btc, 8), ga0 = random_values(bthk, 9),
                           gw0 = random_values(hk, 10);
  std::vector<float> gx = gx0, ga = ga0, gw = gw0;
  dynamic_conv_backward(in.x.data(), in.a.data(), in.gy.data(), gx.data(), ga.data(), B, T, C, H,
                        K, P);
  std::vector<float> want_gx(btc), want_ga(bthk), want_gw(hk);
  for (size_t i = 0; i < btc; ++i) want_gx[i] = gx0[i] + gx_only[i];
  for (size_t i = 0; i < bthk; ++i) want_ga[i] = ga0[i] + ga_only[i];
  for (size_t i = 0; i < hk; ++i) want_gw[i] = gw0[i] + gw_only[i];
  require_close(gx, want_gx, "dynamic gx accumulates", 1e-6);
  require_close(ga, want_ga, "dynamic ga accumulates", 1e-6);
  lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), nullptr, gw.data(), B, T, C,
                            H, K, P);
  require_close(gw, want_gw, "lightweight gw accumulates", 1e-6);

  // Calling twice adds twice.
  std::vector<float> twice(hk, 0.0f);
  for (int i = 0; i < 2; ++i)
    lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), nullptr, twice.data(), B, T,
                              C, H, K, P);
  for (size_t i = 0; i < hk; ++i) want_gw[i] = 2.0f * gw_only[i];
  require_close(twice, want_gw, "lightweight gw twice", 1e-6);

  // The references follow the same contract (the grid test relies on it).
  std::vector<float> ref_zero(bthk, 0.0f), ref_filled = ga0;
  dynamic_conv_backward_reference(in.x.data(), in.a.data(), in.gy.data(), nullptr, ref_zero.data(),
                                  B, T, C, H, K, P);
  dynamic_conv_backward_reference(in.x.data(), in.a.data(), in.gy.data(), nullptr,
                                  ref_filled.data(), B, T, C, H, K, P);
  for (size_t i = 0; i < bthk; ++i) want_ga[i] = ga0[i] + ref_zero[i];
  require_close(ref_filled, want_ga, "reference ga accumulates", 1e-6);
}

TEST_CASE("lightweight conv weight gradient is bit-identical across runs", "[conv]") {
  const ConvCase c{3, 129, 96, 2, 31, 15};  // big enough to run on several threads
  const int64_t B = c.B, T = c.T, C = c.C, H = c.H, K = c.K, P = c.P;
  const Buffers in = random_buffers(c, 21);
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    std::vector<float> first(size_t(H * K), 0.0f), second(size_t(H * K), 0.0f);
    lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), nullptr, first.data(), B, T,
                              C, H, K, P);
    lightweight_conv_backward(in.x.data(), in.w.data(), in.gy.data(), nullptr, second.data(), B, T,
                              C, H, K, P);
    INFO("threads=" << threads);
    REQUIRE(same_bits(first, second));
  }
}

TEST_CASE("one decoding step equals the full causal forward at every position", "[conv]") {
  for (int64_t K : {1, 3, 7, 31}) {
    // N hypotheses advanced together; T > K so the window fills up and then slides.
    const int64_t N = 3, T = K + 6, C = 40, H = 2, P = K - 1;
    INFO("K=" << K);
    const std::vector<float> x = random_values(size_t(N * T * C), 30);  // (N, T, C)
    const std::vector<float> a = random_values(size_t(N * T * H * K), 31);  // (N, T, H, K)
    const std::vector<float> w = random_values(size_t(H * K), 32);  // (H, K)
    std::vector<float> full_dyn(x.size()), full_light(x.size());
    dynamic_conv_forward(x.data(), a.data(), full_dyn.data(), N, T, C, H, K, P);
    lightweight_conv_forward(x.data(), w.data(), full_light.data(), N, T, C, H, K, P);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t j = std::min(t + 1, K);
      std::vector<float> window(size_t(N * j * C)), a_t(size_t(N * H * K));  // (N, j, C), (N, H, K)
      for (int64_t n = 0; n < N; ++n) {
        std::memcpy(&window[n * j * C], &x[(n * T + t - j + 1) * C], sizeof(float) * j * C);
        std::memcpy(&a_t[n * H * K], &a[(n * T + t) * H * K], sizeof(float) * H * K);
      }
      std::vector<float> y_dyn(size_t(N * C)), y_light(size_t(N * C));  // (N, C)
      dynamic_conv_step(window.data(), a_t.data(), y_dyn.data(), N, C, H, K, j);
      lightweight_conv_step(window.data(), w.data(), y_light.data(), N, C, H, K, j);
      std::vector<float> want_dyn(size_t(N * C)), want_light(size_t(N * C));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          want_dyn[n * C + c] = full_dyn[(n * T + t) * C + c];
          want_light[n * C + c] = full_light[(n * T + t) * C + c];
        }
      INFO("t=" << t);
      require_close(y_dyn, want_dyn, "dynamic step", 1e-6);
      require_close(y_light, want_light, "lightweight step", 1e-6);
    }
  }
}

// ℓ = Σ gy ⊙ y is linear in x for fixed weights and linear in the weights for fixed x, so a
// central difference has no truncation error at any step size: with a step of 1 the only error is
// float rounding of ℓ, and float references can be checked to 1e-4.
TEST_CASE("reference backward loops equal finite differences of the reference forward", "[conv]") {
  for (int64_t P : {2, 1}) {  // causal and centred for K = 3
    const ConvCase c{2, 6, 4, 2, 3, P};
    const int64_t B = c.B, T = c.T, C = c.C, H = c.H, K = c.K, Pc = c.P;
    INFO(c.describe());
    Buffers in = random_buffers(c, 40);
    const size_t btc = size_t(B * T * C);

    auto loss_dynamic = [&](const Buffers& b) {
      std::vector<float> y(btc);
      dynamic_conv_forward_reference(b.x.data(), b.a.data(), y.data(), B, T, C, H, K, Pc);
      double loss = 0.0;
      for (size_t i = 0; i < btc; ++i) loss += double(b.gy[i]) * y[i];
      return loss;
    };
    auto loss_light = [&](const Buffers& b) {
      std::vector<float> y(btc);
      lightweight_conv_forward_reference(b.x.data(), b.w.data(), y.data(), B, T, C, H, K, Pc);
      double loss = 0.0;
      for (size_t i = 0; i < btc; ++i) loss += double(b.gy[i]) * y[i];
      return loss;
    };
    // Central difference of `loss` with respect to every element of `values`.
    auto numeric = [&](std::vector<float>& values, auto loss) {
      std::vector<float> grad(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        const float saved = values[i];
        values[i] = saved + 1.0f;
        const double plus = loss(in);
        values[i] = saved - 1.0f;
        const double minus = loss(in);
        values[i] = saved;
        grad[i] = static_cast<float>((plus - minus) / 2.0);
      }
      return grad;
    };

    std::vector<float> gx(btc, 0.0f), ga(in.a.size(), 0.0f);
    dynamic_conv_backward_reference(in.x.data(), in.a.data(), in.gy.data(), gx.data(), ga.data(),
                                    B, T, C, H, K, Pc);
    require_close(gx, numeric(in.x, loss_dynamic), "dynamic gx vs finite differences", 1e-4);
    require_close(ga, numeric(in.a, loss_dynamic), "dynamic ga vs finite differences", 1e-4);

    std::vector<float> gx_l(btc, 0.0f), gw(in.w.size(), 0.0f);
    lightweight_conv_backward_reference(in.x.data(), in.w.data(), in.gy.data(), gx_l.data(),
                                        gw.data(), B, T, C, H, K, Pc);
    require_close(gx_l, numeric(in.x, loss_light), "lightweight gx vs finite differences", 1e-4);
    require_close(gw, numeric(in.w, loss_light), "lightweight gw vs finite differences", 1e-4);
  }
}
