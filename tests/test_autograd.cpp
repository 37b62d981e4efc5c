// The tape itself: accumulation, NoGrad, detach, release of saved activations, memory over many
// steps, determinism and the errors backward() gives.
#include <catch2/catch.hpp>
#include <fstream>
#include <unistd.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

using namespace payless;

namespace {

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

TEST_CASE("gradients accumulate across uses and across backward calls", "[autograd]") {
  Tensor x = Tensor::from_data({3}, {1, 2, 3}, true);
  // y = Σ (x·x + 3x): dy/dx = 2x + 3, and x is used three times.
  Tensor y = sum(add(mul(x, x), scale(x, 3.0f)));
  backward(y);
  CHECK(x.grad().to_vector() == std::vector<float>{5, 7, 9});
  backward(sum(x));  // a second backward adds 1 to what is there
  CHECK(x.grad().to_vector() == std::vector<float>{6, 8, 10});
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
}

TEST_CASE("backward with an explicit output gradient", "[autograd]") {
  Tensor x = Tensor::from_data({2}, {1, 2}, true);
  Tensor y = scale(x, 2.0f);
  backward(y, Tensor::from_data({2}, {10, 100}));
  CHECK(x.grad().to_vector() == std::vector<float>{20, 200});
}

TEST_CASE("NoGrad records nothing and detach cuts history", "[autograd]") {
  clear_tape();
  Tensor x = Tensor::ones({4}, true);
  {
    NoGrad no_grad;
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(tape_size() == 0);
  }
  CHECK(grad_enabled());
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data() == x.data());  // shares storage
  Tensor z = mul(d, d);
  CHECK(tape_size() == 0);
  CHECK_THROWS_WITH(backward(sum(z)), Catch::Contains("does not require grad"));
}

TEST_CASE("backward needs a scalar or a gradient of the output's shape", "[autograd][errors]") {
  Tensor x = Tensor::ones({2, 2}, true);
  Tensor y = scale(x, 2.0f);
  CHECK_THROWS_WITH(backward(y), Catch::Contains("not a scalar") && Catch::Contains("[2, 2]"));
  CHECK_THROWS_WITH(backward(y, Tensor::ones({4})), Catch::Contains("[4]") && Catch::Contains("[2, 2]"));
  clear_tape();
}

TEST_CASE("the tape and saved activations are released after backward", "[autograd]") {
  clear_tape();
  Tensor x = Tensor::ones({8}, true);
  Tensor hidden = tanh(x);
  Tensor loss = sum(mul(hidden, hidden));
  CHECK(tape_size() == 3);
  CHECK(hidden.use_count() > 1);  // saved by tanh's closure (its output) and mul's (its input)
  backward(loss);
  CHECK(tape_size() == 0);
  CHECK(hidden.use_count() == 1);  // only our handle is left
  CHECK(x.use_count() == 1);
}

TEST_CASE("1000 forward/backward steps do not grow the resident set", "[autograd][memory]") {
  Tensor w = Tensor::full({256, 256}, 0.01f, true);
  Tensor input = Tensor::full({256, 256}, 0.5f);
  auto step = [&]() {
    Tensor h = tanh(mul(input, w));
    Tensor loss = mean(mul(h, add(h, w)));
    backward(loss);
    w.zero_grad();
  };
  for (int i = 0; i < 50; ++i) step();
  const int64_t before = resident_bytes();
  for (int i = 0; i < 1000; ++i) step();
  const int64_t after = resident_bytes();
  INFO("resident before " << before << " bytes, after " << after);
  CHECK(after - before < 2 * 1024 * 1024);
  CHECK(tape_size() == 0);
}

TEST_CASE("same inputs and thread count give the same bits", "[autograd][determinism]") {
  auto run = [](int threads) {
    set_num_threads(threads);
    Tensor x = Tensor::empty({300, 400}, true);
    Rng rng(5);
    rng.normal_(x, 0.0f, 1.0f);
    Tensor loss = sum(mul(dropout(gelu(x), 0.1f, true, rng), x));
    backward(loss);
    std::vector<float> out = x.grad().to_vector();
    out.push_back(loss.item());
    return out;
  };
  CHECK(run(1) == run(1));
  CHECK(run(2) == run(2));
  CHECK(run(1) == run(2));  // elementwise work has no cross-thread reductions
  set_num_threads(1);
}

TEST_CASE("random fills are seeded and have the right moments", "[rng]") {
  Tensor a = Tensor::empty({100000}), b = Tensor::empty({100000});
  Rng r1(3), r2(3);
  r1.normal_(a, 1.0f, 2.0f);
  r2.normal_(b, 1.0f, 2.0f);
  CHECK(a.to_vector() == b.to_vector());
  double m = 0, v = 0;
  for (float x : a.to_vector()) m += x;
  m /= a.numel();
  for (float x : a.to_vector()) v += (x - m) * (x - m);
  v /= a.numel();
  CHECK(m == Approx(1.0).margin(0.03));
  CHECK(std::sqrt(v) == Approx(2.0).margin(0.03));
  Tensor w = Tensor::empty({30, 20});
  r1.xavier_uniform_(w);
  float bound = std::sqrt(6.0f / 50.0f), largest = 0;
  for (float x : w.to_vector()) largest = std::max(largest, std::fabs(x));
  CHECK(largest <= bound);
  CHECK(largest > 0.9f * bound);
  CHECK(r1.streams_used() == 2);
}

TEST_CASE("creation helpers", "[tensor]") {
  CHECK(Tensor::arange(4).to_vector() == std::vector<float>{0, 1, 2, 3});
  CHECK(Tensor::full({2}, 7).to_vector() == std::vector<float>{7, 7});
  CHECK(Tensor::zeros({2, 2}).to_vector() == std::vector<float>(4, 0.0f));
  CHECK(Tensor::scalar(3).rank() == 0);
  CHECK(Tensor::scalar(3).item() == 3);
  CHECK_THROWS_WITH(Tensor::from_data({2, 2}, {1, 2, 3}), Catch::Contains("[2, 2]"));
  CHECK_THROWS_WITH((Shape{1, 2, 3, 4, 5}), Catch::Contains("at most 4"));
  CHECK_THROWS_WITH(Tensor::ones({2}).item(), Catch::Contains("2 elements"));
  CHECK_THROWS(Tensor().shape());
}
