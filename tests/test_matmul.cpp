// matmul and linear: the sgemm wrapper against its reference loop at odd sizes, forward values
// against hand-computed products, every transpose/batch variant through the gradient check,
// the error messages, and run-to-run determinism.
#include <catch2/catch.hpp>
#include <limits>

#include "core/autograd.h"
#include "core/kernels/matmul.h"
#include "core/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using Inputs = std::vector<Tensor>;

namespace {

// (rows, cols) stored transposed into a new (cols, rows) buffer.
std::vector<float> transposed(const std::vector<float>& m, int64_t rows, int64_t cols) {
  std::vector<float> t(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = m[i * cols + j];
  return t;
}

}  // namespace

TEST_CASE("gemm equals the reference loop at odd sizes, transposes and strides",
          "[ops][matmul][kernels]") {
  const int64_t sizes[][3] = {{1, 1, 1},     {7, 13, 33},    {33, 7, 13},  {13, 33, 7},
                              {129, 1, 7},   {1, 129, 33},   {33, 129, 129}, {129, 33, 13},
                              {129, 129, 129}, {7, 7, 0}};
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (const auto& s : sizes) {
      const int64_t M = s[0], N = s[1], K = s[2];
      for (int combo = 0; combo < 4; ++combo) {
        const bool ta = combo & 1, tb = combo & 2;
        // Leading dims wider than the matrices, so a mix-up of ld and width shows.
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
        const std::vector<float> A = random_values((ta ? K : M) * lda, 1 + combo);
        const std::vector<float> B = random_values((tb ? N : K) * ldb, 11 + combo);
        const std::vector<float> C0 = random_values(M * ldc, 21 + combo);
        INFO("threads " << threads << " M " << M << " N " << N << " K " << K << " trans_a " << ta
                        << " trans_b " << tb);
        // beta = 1 accumulates (the backward case) ...
        std::vector<float> fast = C0, ref = C0;
        kernels::gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 1.0f, fast.data(), ldc);
        kernels::gemm_reference(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 1.0f,
                                ref.data(), ldc);
        CHECK(count_mismatches(fast, ref, 1e-5, 1e-5) == 0);
        // ... and beta = 0 overwrites without reading: NaN already in C must not leak through.
        std::vector<float> nan_c(M * ldc, std::numeric_limits<float>::quiet_NaN());
        std::vector<float> ref0 = nan_c;
        kernels::gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, nan_c.data(), ldc);
        kernels::gemm_reference(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f,
                                ref0.data(), ldc);
        for (int64_t i = 0; i < M; ++i)  // only the (M, N) part of each padded row is written
          for (int64_t j = N; j < ldc; ++j) nan_c[i * ldc + j] = ref0[i * ldc + j] = 0.0f;
        CHECK(count_mismatches(nan_c, ref0, 1e-5, 1e-5) == 0);
      }
    }
  }
}

TEST_CASE("matmul forward values, transposes and batches", "[ops][matmul]") {
  // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {1, 0, 0, 1, 1, 1};
  Tensor ta = Tensor::from_data({2, 3}, a), tb = Tensor::from_data({3, 2}, b);
  const std::vector<float> want = {4, 5, 10, 11};
  CHECK(matmul(ta, tb).shape() == Shape{2, 2});
  CHECK(matmul(ta, tb).to_vector() == want);
  // The same product with either operand stored transposed.
  Tensor at = Tensor::from_data({3, 2}, transposed(a, 2, 3));
  Tensor bt = Tensor::from_data({2, 3}, transposed(b, 3, 2));
  CHECK(matmul(at, tb, true, false).to_vector() == want);
  CHECK(matmul(ta, bt, false, true).to_vector() == want);
  CHECK(matmul(at, bt, true, true).to_vector() == want);

  // Batched (2, 3, 2, 3) · (2, 3, 3, 2): each of the 6 products equals its 2-D product.
  Tensor A = random_input({2, 3, 2, 3}, 1), B = random_input({2, 3, 3, 2}, 2);
  Tensor C = matmul(A, B);
  REQUIRE(C.shape() == Shape{2, 3, 2, 2});
  Tensor W = random_input({3, 4}, 3);
  Tensor D = matmul(A, W);  // batched × 2-D
  REQUIRE(D.shape() == Shape{2, 3, 2, 4});
  for (int64_t i = 0; i < 6; ++i) {
    Tensor Ai = Tensor::from_data({2, 3}, std::vector<float>(A.data() + i * 6, A.data() + i * 6 + 6));
    Tensor Bi = Tensor::from_data({3, 2}, std::vector<float>(B.data() + i * 6, B.data() + i * 6 + 6));
    std::vector<float> got(C.data() + i * 4, C.data() + i * 4 + 4);
    CHECK(count_mismatches(got, matmul(Ai, Bi).to_vector(), 1e-6, 1e-6) == 0);
    std::vector<float> got_d(D.data() + i * 8, D.data() + i * 8 + 8);
    CHECK(count_mismatches(got_d, matmul(Ai, W).to_vector(), 1e-6, 1e-6) == 0);
  }
  // Batched transposed a times a 2-D b: stored (2, 3, 2) read as (2, 2, 3).
  Tensor Et = Tensor::from_data({1, 3, 2}, transposed(a, 2, 3));
  CHECK(matmul(Et, tb, true, false).to_vector() == want);
}

TEST_CASE("linear is x · Wᵀ + bias over all leading dims", "[ops][matmul]") {
  Tensor x = Tensor::from_data({2, 1, 3}, {1, 2, 3, 4, 5, 6});
  Tensor w = Tensor::from_data({2, 3}, {1, 0, 1, 0, 1, 0});  // (out 2, in 3)
  Tensor bias = Tensor::from_data({2}, {10, 20});
  Tensor y = linear(x, w, bias);
  CHECK(y.shape() == Shape{2, 1, 2});
  CHECK(y.to_vector() == std::vector<float>{14, 22, 20, 25});
  CHECK(linear(x, w).to_vector() == std::vector<float>{4, 2, 10, 5});
  // A zero-width input leaves just the bias.
  CHECK(linear(Tensor::zeros({3, 0}), Tensor::zeros({2, 0}), bias).to_vector() ==
        std::vector<float>{10, 20, 10, 20, 10, 20});
  // A scale multiplies the whole affine map, bias included.
  CHECK(linear(x, w, bias, 0.5f).to_vector() == std::vector<float>{7, 11, 10, 12.5f});
  CHECK(linear(x, w, Tensor(), -2.0f).to_vector() == std::vector<float>{-8, -4, -20, -10});
}

TEST_CASE("matmul gradients: every transpose combination, batched and broadcast",
          "[ops][matmul][gradcheck]") {
  for (int combo = 0; combo < 4; ++combo) {
    const bool ta = combo & 1, tb = combo & 2;
    const std::string tag = std::string(ta ? "a^T" : "a") + " x " + (tb ? "b^T" : "b");
    // M 3, K 4, N 5; stored shapes depend on the flags.
    const Shape sa = ta ? Shape{4, 3} : Shape{3, 4}, sb = tb ? Shape{5, 4} : Shape{4, 5};
    auto f = [ta, tb](const Inputs& in) { return matmul(in[0], in[1], ta, tb); };
    check_gradients("matmul 2-D " + tag, {random_input(sa, 1), random_input(sb, 2)}, f);
    check_gradients("matmul 3-D " + tag,
                    {random_input(Shape{2, sa[0], sa[1]}, 3), random_input(Shape{2, sb[0], sb[1]}, 4)}, f);
    check_gradients("matmul 4-D " + tag,
                    {random_input(Shape{2, 2, sa[0], sa[1]}, 5),
                     random_input(Shape{2, 2, sb[0], sb[1]}, 6)}, f);
    check_gradients("matmul 3-D x 2-D " + tag,
                    {random_input(Shape{3, sa[0], sa[1]}, 7), random_input(sb, 8)}, f);
    check_gradients("matmul 4-D x 2-D " + tag,
                    {random_input(Shape{2, 2, sa[0], sa[1]}, 9), random_input(sb, 10)}, f);
  }
  // Only one side requiring a gradient.
  Tensor frozen = random_input({4, 5}, 11);
  frozen.set_requires_grad(false);
  check_gradients("matmul with frozen b", {random_input({2, 3, 4}, 12)},
                  [frozen](const Inputs& in) { return matmul(in[0], frozen); });
}

TEST_CASE("linear gradients", "[ops][matmul][gradcheck]") {
  Tensor w = random_input({5, 4}, 1), bias = random_input({5}, 2);
  auto with_bias = [](const Inputs& in) { return linear(in[0], in[1], in[2]); };
  auto without = [](const Inputs& in) { return linear(in[0], in[1]); };
  check_gradients("linear 2-D with bias", {random_input({3, 4}, 3), w, bias}, with_bias);
  check_gradients("linear 2-D without bias", {random_input({3, 4}, 4), w}, without);
  check_gradients("linear 3-D with bias", {random_input({2, 3, 4}, 5), w, bias}, with_bias);
  check_gradients("linear 4-D without bias", {random_input({2, 2, 3, 4}, 6), w}, without);
  check_gradients("linear 1-D with bias", {random_input({4}, 7), w, bias}, with_bias);
  auto scaled = [](const Inputs& in) { return linear(in[0], in[1], in[2], 0.35f); };
  check_gradients("linear 3-D with bias, scaled", {random_input({2, 3, 4}, 8), w, bias}, scaled);
  // The scaled op against the two ops it folds together, values and all three gradients.
  auto both = [&](bool folded) {
    Tensor x = random_input({2, 3, 4}, 9), wc = random_input({5, 4}, 1), bc = random_input({5}, 2);
    Tensor y = folded ? linear(x, wc, bc, 0.35f) : scale(linear(x, wc, bc), 0.35f);
    backward(sum(mul(y, random_input(y.shape(), 10))));
    return std::vector<Tensor>{y, x.grad(), wc.grad(), bc.grad()};
  };
  const std::vector<Tensor> folded = both(true), composed = both(false);
  for (size_t i = 0; i < folded.size(); ++i) {
    INFO("tensor " << i << " (y, dx, dW, db)");
    CHECK(max_abs_diff(folded[i], composed[i]) <= 1e-5f);
  }
}

TEST_CASE("matmul and linear shape errors name the op and both shapes", "[ops][matmul][errors]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  b.set_name("proj.weight");
  CHECK_THROWS_WITH(matmul(a, b), Catch::Contains("matmul") && Catch::Contains("[2, 3]") &&
                                      Catch::Contains("'proj.weight' [4, 5]"));
  CHECK_THROWS_WITH(matmul(a, Tensor::zeros({2, 5}), false, true),
                    Catch::Contains("matmul") && Catch::Contains("[2, 3]") &&
                        Catch::Contains("[2, 5]") && Catch::Contains("trans_b"));
  CHECK_THROWS_WITH(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})),
                    Catch::Contains("matmul") && Catch::Contains("[2, 2, 3]") &&
                        Catch::Contains("[3, 3, 4]"));
  CHECK_THROWS_WITH(matmul(a, Tensor::zeros({2, 3, 4})), Catch::Contains("matmul"));
  CHECK_THROWS_WITH(matmul(Tensor::zeros({3}), a), Catch::Contains("matmul"));

  Tensor x = Tensor::zeros({2, 7, 3}), w = Tensor::zeros({5, 4});
  w.set_name("fc1.weight");
  CHECK_THROWS_WITH(linear(x, w), Catch::Contains("linear") && Catch::Contains("[2, 7, 3]") &&
                                      Catch::Contains("'fc1.weight' [5, 4]"));
  Tensor bias = Tensor::zeros({4});
  bias.set_name("fc1.bias");
  CHECK_THROWS_WITH(linear(Tensor::zeros({2, 4}), w, bias),
                    Catch::Contains("linear") && Catch::Contains("'fc1.bias' [4]") &&
                        Catch::Contains("[5, 4]"));
}

TEST_CASE("matmul and linear give the same bits run after run", "[ops][matmul]") {
  auto run = [] {
    Tensor x = random_input({3, 37, 65}, 1), w = random_input({33, 65}, 2), b = random_input({33}, 3);
    Tensor m = random_input({3, 33, 17}, 4);
    Tensor y = matmul(linear(x, w, b), m);
    backward(sum(y));
    std::vector<float> bits = y.to_vector();
    for (const Tensor& t : {x, w, b, m}) {
      std::vector<float> g = t.grad().to_vector();
      bits.insert(bits.end(), g.begin(), g.end());
    }
    return bits;
  };
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    CHECK(same_bits(run(), run()));
  }
}
