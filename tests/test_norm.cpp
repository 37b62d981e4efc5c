// layer_norm: hand-computed values, the fused kernels against their double reference at odd
// sizes with 1 and 2 threads, gradient checks with and without gamma/beta, errors, determinism.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "core/kernels/norm.h"
#include "core/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using Inputs = std::vector<Tensor>;

TEST_CASE("layer_norm values", "[ops][norm]") {
  // Row (1, 2, 3, 4): mean 2.5, biased variance 1.25.
  Tensor x = Tensor::from_data({2, 4}, {1, 2, 3, 4, 7, 7, 7, 7});
  std::vector<float> y = layer_norm(x, Tensor(), Tensor()).to_vector();
  const double rs = 1.0 / std::sqrt(1.25 + 1e-5);
  const double want[4] = {-1.5 * rs, -0.5 * rs, 0.5 * rs, 1.5 * rs};
  for (int c = 0; c < 4; ++c) CHECK(y[c] == Approx(want[c]).epsilon(1e-6));
  for (int c = 4; c < 8; ++c) CHECK(y[c] == 0.0f);  // a constant row normalises to 0, not NaN
  Tensor gamma = Tensor::from_data({4}, {1, 2, 3, 4}), beta = Tensor::from_data({4}, {0, 1, 0, -1});
  std::vector<float> z = layer_norm(x, gamma, beta).to_vector();
  for (int c = 0; c < 4; ++c)
    CHECK(z[c] == Approx(want[c] * gamma.data()[c] + beta.data()[c]).epsilon(1e-6));
  for (int c = 4; c < 8; ++c) CHECK(z[c] == beta.data()[c - 4]);
  // eps matters: with eps = 1 the variance 1.25 becomes 2.25.
  CHECK(layer_norm(x, Tensor(), Tensor(), 1.0f).to_vector()[0] == Approx(-1.5 / 1.5));
  // A large offset next to a small spread: the two-pass variance keeps the digits.
  Tensor offset = Tensor::from_data({1, 4}, {10001, 10002, 10003, 10004});
  std::vector<float> yo = layer_norm(offset, Tensor(), Tensor()).to_vector();
  for (int c = 0; c < 4; ++c) CHECK(yo[c] == Approx(want[c]).epsilon(1e-4));
}

TEST_CASE("layer_norm kernels equal their reference loops at odd sizes", "[ops][norm][kernels]") {
  // The last shape is past kParallelMinWork, so with 2 threads the chunks really are split.
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {7, 13}, {13, 33}, {33, 129}, {129, 7},
                               {129, 129}, {300, 129}};
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (const auto& s : shapes) {
      const int64_t rows = s[0], C = s[1], n = rows * C;
      const std::vector<float> x = random_values(n, 1, -3.0f, 5.0f), dy = random_values(n, 2);
      const std::vector<float> gamma = random_values(C, 3, 0.5f, 1.5f), beta = random_values(C, 4);
      const std::vector<float> dx0 = random_values(n, 5), dg0 = random_values(C, 6),
                               db0 = random_values(C, 7);
      for (bool affine : {false, true}) {
        INFO("threads " << threads << " rows " << rows << " C " << C << " affine " << affine);
        const float* g = affine ? gamma.data() : nullptr;
        const float* b = affine ? beta.data() : nullptr;
        std::vector<float> y(n), y_ref(n), mean(rows), mean_ref(rows), rstd(rows), rstd_ref(rows);
        kernels::layer_norm_forward(x.data(), g, b, y.data(), mean.data(), rstd.data(), rows, C, 1e-5f);
        kernels::layer_norm_forward_reference(x.data(), g, b, y_ref.data(), mean_ref.data(),
                                              rstd_ref.data(), rows, C, 1e-5f);
        CHECK(count_mismatches(y, y_ref, 1e-5, 1e-5) == 0);
        CHECK(count_mismatches(mean, mean_ref, 1e-6, 1e-6) == 0);
        CHECK(count_mismatches(rstd, rstd_ref, 0.0, 1e-5) == 0);

        // Backward adds into buffers that already hold something.
        std::vector<float> dx = dx0, dx_ref = dx0, dg = dg0, dg_ref = dg0, db = db0, db_ref = db0;
        kernels::layer_norm_backward(x.data(), g, mean_ref.data(), rstd_ref.data(), dy.data(),
                                     dx.data(), dg.data(), db.data(), rows, C);
        kernels::layer_norm_backward_reference(x.data(), g, mean_ref.data(), rstd_ref.data(),
                                               dy.data(), dx_ref.data(), dg_ref.data(),
                                               db_ref.data(), rows, C);
        CHECK(count_mismatches(dx, dx_ref, 1e-5, 1e-5) == 0);
        CHECK(count_mismatches(dg, dg_ref, 1e-4, 1e-5) == 0);
        CHECK(count_mismatches(db, db_ref, 1e-4, 1e-5) == 0);
        // Any of the three outputs may be skipped.
        std::vector<float> only_dx = dx0;
        kernels::layer_norm_backward(x.data(), g, mean_ref.data(), rstd_ref.data(), dy.data(),
                                     only_dx.data(), nullptr, nullptr, rows, C);
        CHECK(same_bits(only_dx, dx));
        std::vector<float> only_db = db0;
        kernels::layer_norm_backward(x.data(), g, mean_ref.data(), rstd_ref.data(), dy.data(),
                                     nullptr, nullptr, only_db.data(), rows, C);
        CHECK(same_bits(only_db, db));
        // dx into a fresh buffer (NaN: never read) is the reference added to zeros.
        std::vector<float> fresh_dx(n, std::nanf("")), zero_dx(n, 0.0f);
        kernels::layer_norm_backward(x.data(), g, mean_ref.data(), rstd_ref.data(), dy.data(),
                                     fresh_dx.data(), nullptr, nullptr, rows, C, /*dx_fresh=*/true);
        kernels::layer_norm_backward_reference(x.data(), g, mean_ref.data(), rstd_ref.data(),
                                               dy.data(), zero_dx.data(), nullptr, nullptr, rows, C);
        CHECK(count_mismatches(fresh_dx, zero_dx, 1e-5, 1e-5) == 0);
      }
    }
  }
}

TEST_CASE("layer_norm gradients", "[ops][norm][gradcheck]") {
  Tensor gamma = random_input({5}, 1, 0.5f, 1.5f), beta = random_input({5}, 2);
  check_gradients("layer_norm with gamma and beta", {random_input({3, 5}, 3), gamma, beta},
                  [](const Inputs& in) { return layer_norm(in[0], in[1], in[2]); });
  check_gradients("layer_norm without gamma and beta", {random_input({3, 5}, 4)},
                  [](const Inputs& in) { return layer_norm(in[0], Tensor(), Tensor()); });
  check_gradients("layer_norm gamma only, 3-D", {random_input({2, 3, 5}, 5), gamma},
                  [](const Inputs& in) { return layer_norm(in[0], in[1], Tensor()); });
  check_gradients("layer_norm beta only, 4-D", {random_input({2, 2, 2, 5}, 6), beta},
                  [](const Inputs& in) { return layer_norm(in[0], Tensor(), in[1]); });
  // Frozen x: only the parameters get gradients.
  Tensor x = random_input({4, 5}, 7);
  x.set_requires_grad(false);
  check_gradients("layer_norm parameters only", {gamma, beta},
                  [x](const Inputs& in) { return layer_norm(x, in[0], in[1]); });
}

TEST_CASE("layer_norm errors name the op and the shapes", "[ops][norm][errors]") {
  Tensor x = Tensor::zeros({2, 7, 8});
  Tensor gamma = Tensor::ones({6});
  gamma.set_name("encoder.layers.0.final_layer_norm.weight");
  CHECK_THROWS_WITH(layer_norm(x, gamma, Tensor()),
                    Catch::Contains("layer_norm") && Catch::Contains("[2, 7, 8]") &&
                        Catch::Contains("'encoder.layers.0.final_layer_norm.weight' [6]"));
  CHECK_THROWS_WITH(layer_norm(x, Tensor(), Tensor::zeros({8, 1})),
                    Catch::Contains("beta") && Catch::Contains("[8, 1]"));
  CHECK_THROWS_WITH(layer_norm(Tensor::zeros({3, 0}), Tensor(), Tensor()),
                    Catch::Contains("layer_norm") && Catch::Contains("[3, 0]"));
  CHECK_THROWS_WITH(layer_norm(x, Tensor(), Tensor(), -1.0f), Catch::Contains("eps"));
}

TEST_CASE("layer_norm gradients are deterministic and thread-count independent", "[ops][norm]") {
  auto run = [] {
    Tensor x = random_input({300, 129}, 1, -2.0f, 2.0f);
    Tensor gamma = random_input({129}, 2), beta = random_input({129}, 3);
    Tensor y = layer_norm(x, gamma, beta);
    backward(sum(mul(y, y)));
    std::vector<float> bits = y.to_vector();
    for (const Tensor& t : {x, gamma, beta}) {
      std::vector<float> g = t.grad().to_vector();
      bits.insert(bits.end(), g.begin(), g.end());
    }
    return bits;
  };
  check_same_bits_at_1_and_2_threads(run);
}
