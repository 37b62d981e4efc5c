// softmax, log_softmax and the label-smoothed cross-entropy: fast_exp against std::exp, every
// row kernel against its double reference at odd sizes with 1 and 2 threads, hand-computed
// values (the two smoothing formulas of spec §7 included), gradient checks of every variant,
// the error messages, and determinism.
#include <catch2/catch.hpp>

#include <cstring>
#include <cmath>
#include <algorithm>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/kernels/softmax.h"
#include "core/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using Inputs = std::vector<Tensor>;

namespace {

// Row counts × widths the kernels are compared at; the last two are past kParallelMinWork, so with
// 2 threads the rows really are split. Widths up to 16 take the one-vector-per-row path.
const int64_t kShapes[][2] = {{1, 1}, {1, 7}, {7, 13}, {5, 16}, {4, 17}, {13, 33}, {33, 129},
                              {129, 1}, {129, 129}, {257, 129}, {11001, 3}};

}  // namespace

TEST_CASE("fast_exp is within a few ulp of exp over the whole float range", "[ops][softmax][kernels]") {
  double worst = 0.0;
  for (double x = -87.0; x <= 88.3; x += 0.0137) {
    const float xf = static_cast<float>(x);
    const double want = std::exp(double(xf));
    worst = std::max(worst, std::fabs(kernels::fast_exp(xf) - want) / want);
  }
  for (float x : {-1e-7f, 1e-7f, 0.3465f, -0.3466f, 1.0f})  // around n = 0 and its edges
    worst = std::max(worst, std::fabs(kernels::fast_exp(x) - std::exp(double(x))) / std::exp(double(x)));
  INFO("worst relative error " << worst);
  CHECK(worst < 2.5e-7);  // float epsilon is 1.19e-7
  CHECK(kernels::fast_exp(0.0f) == 1.0f);
  CHECK(kernels::fast_exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(kernels::fast_exp(-100.0f) == 0.0f);
  CHECK(std::isinf(kernels::fast_exp(100.0f)));
  CHECK(std::isnan(kernels::fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("fast_exp_lanes has fast_exp's bits in every lane", "[ops][softmax][kernels]") {
  // Every 16 consecutive floats of a sweep over [-90, 90], the clamps' edges, ±inf and NaN.
  std::vector<float> xs;
  for (double x = -90.0; x <= 90.0; x += 0.00731) xs.push_back(static_cast<float>(x));
  for (float x : {-87.33f, -87.34f, 88.37f, 88.38f, 0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()})
    xs.push_back(x);
  while (xs.size() % 16 != 0) xs.push_back(0.5f);
  int64_t differing = 0;
  for (size_t i = 0; i < xs.size(); i += 16) {
    kernels::Lanes16 v;
    std::memcpy(&v, xs.data() + i, sizeof v);
    const kernels::Lanes16 e = kernels::fast_exp_lanes(v);
    for (int l = 0; l < 16; ++l) {
      const float want = kernels::fast_exp(xs[i + l]);
      const bool same = std::isnan(want) ? std::isnan(e[l]) : std::memcmp(&want, &e[l], sizeof want) == 0;
      if (!same && differing++ == 0) UNSCOPED_INFO("x " << xs[i + l] << ": " << e[l] << " vs " << want);
    }
  }
  CHECK(differing == 0);
}

TEST_CASE("softmax kernels equal their reference loops at odd sizes", "[ops][softmax][kernels]") {
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (const auto& s : kShapes) {
      const int64_t rows = s[0], V = s[1], n = rows * V;
      INFO("threads " << threads << " rows " << rows << " V " << V);
      const std::vector<float> x = random_values(n, 1, -8.0f, 8.0f), dy = random_values(n, 2);
      const std::vector<float> dx0 = random_values(n, 3);  // backward adds to what is there
      std::vector<float> y(n), y_ref(n), lp(n), lp_ref(n);
      kernels::softmax_rows(x.data(), y.data(), rows, V);
      kernels::softmax_rows_reference(x.data(), y_ref.data(), rows, V);
      CHECK(count_mismatches(y, y_ref, 1e-9, 1e-6) == 0);
      kernels::log_softmax_rows(x.data(), lp.data(), rows, V);
      kernels::log_softmax_rows_reference(x.data(), lp_ref.data(), rows, V);
      CHECK(count_mismatches(lp, lp_ref, 1e-5, 1e-6) == 0);

      std::vector<float> dx = dx0, dx_ref = dx0;
      kernels::softmax_backward_rows(y_ref.data(), dy.data(), dx.data(), rows, V);
      kernels::softmax_backward_rows_reference(y_ref.data(), dy.data(), dx_ref.data(), rows, V);
      CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);
      dx = dx_ref = dx0;
      kernels::log_softmax_backward_rows(lp_ref.data(), dy.data(), dx.data(), rows, V);
      kernels::log_softmax_backward_rows_reference(lp_ref.data(), dy.data(), dx_ref.data(), rows, V);
      CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);

      // A fresh gradient buffer (NaN here: it must not be read) gets what the reference adds to 0.
      const std::vector<float> zeros(n, 0.0f), nans(n, std::nanf(""));
      dx = nans, dx_ref = zeros;
      kernels::softmax_backward_rows(y_ref.data(), dy.data(), dx.data(), rows, V, /*fresh=*/true);
      kernels::softmax_backward_rows_reference(y_ref.data(), dy.data(), dx_ref.data(), rows, V);
      CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);
      dx = nans, dx_ref = zeros;
      kernels::log_softmax_backward_rows(lp_ref.data(), dy.data(), dx.data(), rows, V, true);
      kernels::log_softmax_backward_rows_reference(lp_ref.data(), dy.data(), dx_ref.data(), rows, V);
      CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);
    }
  }
}

TEST_CASE("cross-entropy kernels equal their reference loops at odd sizes", "[ops][softmax][kernels]") {
  const kernels::SmoothingWeights weightings[] = {{1.0f, 0.0f}, {0.9f, 0.1f / 33}, {0.85f, 0.05f}};
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (const auto& s : kShapes) {
      const int64_t rows = s[0], V = s[1], n = rows * V;
      const std::vector<float> x = random_values(n, 4, -8.0f, 8.0f), dx0 = random_values(n, 5);
      std::vector<int32_t> targets(rows);
      for (int64_t r = 0; r < rows; ++r) targets[r] = r % 5 == 3 ? -7 : int32_t((r * 31 + 5) % V);
      for (const auto& w : weightings) {
        INFO("threads " << threads << " rows " << rows << " V " << V << " weights "
                        << w.target_weight << ", " << w.uniform_weight);
        std::vector<float> loss(rows), nll(rows), lse(rows), loss_ref(rows), nll_ref(rows), lse_ref(rows);
        kernels::cross_entropy_rows(x.data(), targets.data(), rows, V, -7, w, loss.data(), nll.data(),
                                    lse.data());
        kernels::cross_entropy_rows_reference(x.data(), targets.data(), rows, V, -7, w,
                                              loss_ref.data(), nll_ref.data(), lse_ref.data());
        CHECK(count_mismatches(loss, loss_ref, 1e-5, 1e-5) == 0);
        CHECK(count_mismatches(nll, nll_ref, 1e-5, 1e-5) == 0);
        CHECK(count_mismatches(lse, lse_ref, 1e-5, 1e-6) == 0);
        std::vector<float> dx = dx0, dx_ref = dx0;
        kernels::cross_entropy_backward_rows(x.data(), targets.data(), lse_ref.data(), rows, V, -7, w,
                                             0.75f, dx.data());
        kernels::cross_entropy_backward_rows_reference(x.data(), targets.data(), lse_ref.data(), rows,
                                                       V, -7, w, 0.75f, dx_ref.data());
        CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);
        // Into a fresh buffer (NaN: never read), ignored rows included: the reference on zeros.
        dx.assign(n, std::nanf(""));
        dx_ref.assign(n, 0.0f);
        kernels::cross_entropy_backward_rows(x.data(), targets.data(), lse_ref.data(), rows, V, -7, w,
                                             0.75f, dx.data(), /*fresh=*/true);
        kernels::cross_entropy_backward_rows_reference(x.data(), targets.data(), lse_ref.data(), rows,
                                                       V, -7, w, 0.75f, dx_ref.data());
        CHECK(count_mismatches(dx, dx_ref, 1e-6, 1e-5) == 0);
      }
    }
  }
}

TEST_CASE("softmax and log_softmax values", "[ops][softmax]") {
  // logits log(1..4) give p = (1..4)/10.
  Tensor x = Tensor::from_data({2, 4}, {0, std::log(2.0f), std::log(3.0f), std::log(4.0f),
                                        5, 5, 5, 5});
  std::vector<float> p = softmax(x).to_vector(), lp = log_softmax(x).to_vector();
  const float want[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.25f, 0.25f, 0.25f, 0.25f};
  for (int i = 0; i < 8; ++i) {
    CHECK(p[i] == Approx(want[i]).epsilon(1e-6));
    CHECK(lp[i] == Approx(std::log(want[i])).epsilon(1e-6));
  }
  // Max subtraction: huge logits neither overflow nor change the answer.
  Tensor big = Tensor::from_data({1, 4}, {1000, 1000 + std::log(2.0f), 1000 + std::log(3.0f),
                                          1000 + std::log(4.0f)});
  std::vector<float> pb = softmax(big).to_vector(), lpb = log_softmax(big).to_vector();
  for (int i = 0; i < 4; ++i) {
    CHECK(pb[i] == Approx(want[i]).epsilon(1e-4));  // log(k) lost digits next to 1000
    CHECK(lpb[i] == Approx(std::log(want[i])).epsilon(1e-3));
  }
  // A masked (-inf) entry gets exactly 0 probability.
  Tensor masked = Tensor::from_data({1, 3}, {0, -std::numeric_limits<float>::infinity(), 0});
  CHECK(softmax(masked).to_vector() == std::vector<float>{0.5f, 0.0f, 0.5f});
  // Rank 3: rows are the last dim.
  CHECK(softmax(Tensor::zeros({2, 3, 5})).to_vector() == std::vector<float>(30, 0.2f));
}

TEST_CASE("cross-entropy golden values of both smoothing formulas (spec 7)", "[ops][softmax]") {
  // One row, V = 4, p = (0.1, 0.2, 0.3, 0.4), gold y = 3, ε = 0.1:
  //   paper:   0.9·(−ln 0.4) + (0.1/4)·(−Σ ln p)                 = 0.97546882...
  //   current: (1 − 0.1 − 0.1/3)·(−ln 0.4) + (0.1/3)·(−Σ ln p)   = 0.99519485...
  //   nll: −ln 0.4 = 0.91629073...
  Tensor logits = Tensor::from_data({1, 4}, {0, std::log(2.0f), std::log(3.0f), std::log(4.0f)});
  IdTensor gold(Shape{1}, {3});
  auto paper = cross_entropy(logits, gold, -1, 0.1f, SmoothingVariant::kPaper);
  auto current = cross_entropy(logits, gold, -1, 0.1f, SmoothingVariant::kCurrent);
  auto plain = cross_entropy(logits, gold);
  CHECK(paper.loss.item() == Approx(0.9754688222).epsilon(1e-6));
  CHECK(current.loss.item() == Approx(0.9951948523).epsilon(1e-6));
  CHECK(plain.loss.item() == Approx(0.9162907319).epsilon(1e-6));
  for (const auto& r : {paper, current, plain}) {
    CHECK(r.nll.item() == Approx(0.9162907319).epsilon(1e-6));
    CHECK(r.tokens == 1);
  }

  // Both equal the explicit cross-entropy −Σ q·lp against their target distributions, on random
  // logits with a larger vocabulary.
  const int64_t V = 11;
  Tensor x = Tensor::from_data({1, V}, random_values(V, 9, -3.0f, 3.0f));
  std::vector<float> lp = log_softmax(x).to_vector();
  const int32_t y = 6;
  const double eps = 0.1;
  double explicit_paper = 0.0, explicit_current = 0.0;
  for (int64_t v = 0; v < V; ++v) {
    double q_paper = eps / V + (v == y ? 1.0 - eps : 0.0);
    double q_current = v == y ? 1.0 - eps : eps / (V - 1);
    explicit_paper -= q_paper * lp[v];
    explicit_current -= q_current * lp[v];
  }
  IdTensor t(Shape{1}, {y});
  CHECK(cross_entropy(x, t, -1, 0.1f, SmoothingVariant::kPaper).loss.item() ==
        Approx(explicit_paper).epsilon(1e-5));
  CHECK(cross_entropy(x, t, -1, 0.1f, SmoothingVariant::kCurrent).loss.item() ==
        Approx(explicit_current).epsilon(1e-5));
}

TEST_CASE("cross-entropy sums kept rows and skips ignore_index", "[ops][softmax]") {
  // Rows: gold 3 of p=(.1,.2,.3,.4); ignored (pad = 1); gold 0 of uniform logits.
  Tensor logits = Tensor::from_data({3, 4}, {0, std::log(2.0f), std::log(3.0f), std::log(4.0f),
                                             9, -9, 3, 100,  // anything: ignored
                                             2, 2, 2, 2});
  logits.set_requires_grad(true);
  IdTensor targets(Shape{3}, {3, 1, 0});
  auto r = cross_entropy(logits, targets, /*ignore_index=*/1, 0.1f, SmoothingVariant::kPaper);
  CHECK(r.tokens == 2);
  CHECK(r.nll.item() == Approx(-std::log(0.4) + std::log(4.0)).epsilon(1e-6));
  // uniform row: every −lp = ln 4, so the loss is ln 4 whatever the smoothing.
  CHECK(r.loss.item() == Approx(0.9754688222 + std::log(4.0)).epsilon(1e-6));
  CHECK_FALSE(r.nll.requires_grad());
  backward(r.loss);
  std::vector<float> g = logits.grad().to_vector();
  for (int v = 4; v < 8; ++v) CHECK(g[v] == 0.0f);  // the ignored row
  // First row: p − q with q = 0.025 + 0.9·[v = 3].
  CHECK(g[0] == Approx(0.1 - 0.025).epsilon(1e-5));
  CHECK(g[3] == Approx(0.4 - 0.925).epsilon(1e-5));

  // All rows ignored: zero loss, zero tokens, zero gradient.
  Tensor l2 = random_input({2, 5}, 3);
  auto none = cross_entropy(l2, IdTensor(Shape{2}, {0, 0}), 0, 0.1f);
  CHECK(none.tokens == 0);
  CHECK(none.loss.item() == 0.0f);
  // (B, T, V) logits with (B, T) targets.
  auto three_d = cross_entropy(random_input({2, 3, 5}, 4), IdTensor(Shape{2, 3}, {0, 1, 2, 3, 4, 0}));
  CHECK(three_d.tokens == 6);
  clear_tape();
}

TEST_CASE("softmax and cross-entropy gradients", "[ops][softmax][gradcheck]") {
  check_gradients("softmax", {random_input({3, 5}, 1, -2.0f, 2.0f)},
                  [](const Inputs& in) { return softmax(in[0]); });
  check_gradients("softmax 3-D", {random_input({2, 3, 4}, 2, -2.0f, 2.0f)},
                  [](const Inputs& in) { return softmax(in[0]); });
  check_gradients("log_softmax", {random_input({3, 5}, 3, -2.0f, 2.0f)},
                  [](const Inputs& in) { return log_softmax(in[0]); });
  check_gradients("log_softmax 3-D", {random_input({2, 3, 4}, 4, -2.0f, 2.0f)},
                  [](const Inputs& in) { return log_softmax(in[0]); });
  check_gradients("softmax single column", {random_input({4, 1}, 5)},
                  [](const Inputs& in) { return softmax(in[0]); });

  const IdTensor targets(Shape{5}, {2, 1, 5, 0, 1});  // rows 1 and 4 are padding (1)
  for (auto variant : {SmoothingVariant::kPaper, SmoothingVariant::kCurrent})
    for (float eps : {0.0f, 0.1f})
      for (int32_t ignore : {-1, 1}) {
        std::string name = std::string("cross_entropy ") +
                           (variant == SmoothingVariant::kPaper ? "paper" : "current") +
                           " eps " + std::to_string(eps) + " ignore " + std::to_string(ignore);
        check_gradients(name, {random_input({5, 6}, 6, -2.0f, 2.0f)},
                        [&](const Inputs& in) {
                          return cross_entropy(in[0], targets, ignore, eps, variant).loss;
                        });
      }
  const IdTensor targets_2d(Shape{2, 3}, {0, 4, 3, 1, 1, 2});
  check_gradients("cross_entropy 3-D logits", {random_input({2, 3, 5}, 7, -2.0f, 2.0f)},
                  [&](const Inputs& in) {
                    return cross_entropy(in[0], targets_2d, 1, 0.1f, SmoothingVariant::kCurrent).loss;
                  });
}

TEST_CASE("softmax and cross-entropy errors name the op, the tensor and the value",
          "[ops][softmax][errors]") {
  Tensor logits = Tensor::zeros({3, 5});
  logits.set_name("decoder.output");
  CHECK_THROWS_WITH(cross_entropy(logits, IdTensor(Shape{3}, {0, 7, 1})),
                    Catch::Contains("cross_entropy") && Catch::Contains("row 1") &&
                        Catch::Contains("target 7") && Catch::Contains("'decoder.output' [3, 5]"));
  CHECK_THROWS_WITH(cross_entropy(logits, IdTensor(Shape{3}, {0, 1, -2}), -1),
                    Catch::Contains("row 2") && Catch::Contains("-2"));
  CHECK_THROWS_WITH(cross_entropy(logits, IdTensor(Shape{4}, {0, 1, 2, 3})),
                    Catch::Contains("cross_entropy") && Catch::Contains("[4]") &&
                        Catch::Contains("'decoder.output' [3, 5]"));
  CHECK_THROWS_WITH(cross_entropy(logits, IdTensor(Shape{3}, {0, 1, 2}), -1, 1.5f),
                    Catch::Contains("smoothing"));
  CHECK_THROWS_WITH(cross_entropy(Tensor::zeros({2, 1}), IdTensor(Shape{2}, {0, 0}), -1, 0.1f,
                                  SmoothingVariant::kCurrent),
                    Catch::Contains("V >= 2"));
  CHECK_THROWS_WITH(softmax(Tensor::zeros({3, 0})), Catch::Contains("softmax") && Catch::Contains("[3, 0]"));
  CHECK_THROWS_WITH(log_softmax(Tensor::scalar(1)), Catch::Contains("log_softmax"));
}

TEST_CASE("softmax and cross-entropy are deterministic and thread-count independent", "[ops][softmax]") {
  // 300 rows of V = 257 is past kParallelMinWork, so 2 threads really split the rows.
  const IdTensor targets(Shape{300}, std::vector<int32_t>(300, 17));
  auto run = [&] {
    Tensor x = random_input({300, 257}, 1, -5.0f, 5.0f);
    Tensor p = softmax(x);
    auto ce = cross_entropy(x, targets, -1, 0.1f);
    backward(add(sum(mul(p, p)), ce.loss));
    std::vector<float> bits = p.to_vector();
    std::vector<float> g = x.grad().to_vector();
    bits.insert(bits.end(), g.begin(), g.end());
    bits.push_back(ce.loss.item());
    return bits;
  };
  check_same_bits_at_1_and_2_threads(run);
}
