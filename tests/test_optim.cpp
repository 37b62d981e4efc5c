// optim/: Adam and SGD against hand-computed updates, the schedules against the spec's golden
// tables, gradient clipping, checkpoint state round trips, and parameters without gradients.
//
// The expected update values were computed with a short independent python3 script (plain double
// arithmetic, written from the formulas of spec §6.2 and torch.optim.SGD's documentation, not
// from this code); payless computes in float32, hence the 1e-5 relative tolerance.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/kernels/adam.h"
#include "core/parallel.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

using namespace payless;

namespace {

// Replaces the gradient of `p` (as a backward pass would have left it).
void set_grad(Tensor p, const std::vector<float>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == p.numel());
  p.zero_grad();
  float* g = p.grad_ptr();
  for (size_t i = 0; i < values.size(); ++i) g[i] = values[i];
}

void check_values(const Tensor& t, const std::vector<double>& expected) {
  std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).epsilon(1e-5));
}

// A value printed as the spec's tables print it (6 significant digits).
std::string six_digits(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", x);
  return buffer;
}

}  // namespace

TEST_CASE("adam matches the spec's formula over three steps with weight decay", "[optim][adam]") {
  // θ0 = [1, -2, 0.5], betas (0.9, 0.98), eps 1e-2, wd 0.1, lr 0.1 then 0.05 then 0.02.
  // The large eps makes its placement visible: adding it to the bias-corrected sqrt(v̂), as
  // textbook Adam does, moves these values by 0.01 to 0.05 -- far outside the tolerance.
  Tensor w = Tensor::from_data({3}, {1.0f, -2.0f, 0.5f}, true);
  AdamOptions options;
  options.lr = 0.1;
  options.beta1 = 0.9;
  options.beta2 = 0.98;
  options.eps = 1e-2;
  options.weight_decay = 0.1;
  Adam adam({{"w", w}}, options);

  set_grad(w, {0.5f, -0.1f, 0.02f});
  adam.step();
  check_values(w, {0.902389934, -1.92142136, 0.472951879});

  adam.set_lr(0.05);
  set_grad(w, {0.3f, 0.2f, -0.01f});
  adam.step();
  check_values(w, {0.8551188, -1.925675, 0.467398066});

  adam.set_lr(0.02);
  set_grad(w, {-0.4f, 0.05f, 0.0f});
  adam.step();
  check_values(w, {0.848885937, -1.9281679, 0.465480023});
  CHECK(adam.updates() == 3);
  CHECK(adam.param_steps(0) == 3);
}

TEST_CASE("the adam kernel gives the same bits with one and two threads", "[optim][adam]") {
  const int64_t n = 300007;  // above the threading threshold, odd so the split is uneven
  std::vector<float> grad(n), p1(n), m1(n, 0.01f), v1(n, 0.02f);
  for (int64_t i = 0; i < n; ++i) {
    grad[i] = std::sin(0.001f * i);
    p1[i] = std::cos(0.003f * i);
  }
  std::vector<float> p2 = p1, m2 = m1, v2 = v1;
  kernels::AdamScalars s{0.9f, 0.1f, 0.98f, 0.02f, 1e-8f, 1e-5f, 1e-3f};
  const int threads = num_threads();
  set_num_threads(1);
  kernels::adam_update(p1.data(), grad.data(), m1.data(), v1.data(), n, s);
  set_num_threads(2);
  kernels::adam_update(p2.data(), grad.data(), m2.data(), v2.data(), n, s);
  set_num_threads(threads);
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
}

TEST_CASE("sgd with momentum, nesterov and dampening follows torch.optim.SGD", "[optim][sgd]") {
  // θ0 = [1, -2], lr 0.1, grads [0.5, -0.25], [0.25, 0.5], [-1, 0.125].
  const std::vector<std::vector<float>> grads = {{0.5f, -0.25f}, {0.25f, 0.5f}, {-1.0f, 0.125f}};
  auto run = [&](const SgdOptions& options) {
    Tensor w = Tensor::from_data({2}, {1.0f, -2.0f}, true);
    Sgd sgd({{"w", w}}, options);
    std::vector<std::vector<float>> trajectory;
    for (const auto& g : grads) {
      set_grad(w, g);
      sgd.step();
      trajectory.push_back(w.to_vector());
    }
    return trajectory;
  };
  auto check = [](const std::vector<std::vector<float>>& got,
                  const std::vector<std::vector<double>>& expected) {
    for (size_t s = 0; s < expected.size(); ++s)
      for (size_t i = 0; i < expected[s].size(); ++i)
        CHECK(got[s][i] == Approx(expected[s][i]).epsilon(1e-5));
  };
  SgdOptions options;
  options.lr = 0.1;
  options.momentum = 0.9;
  options.weight_decay = 0.01;
  SECTION("heavy-ball momentum") {
    check(run(options), {{0.949, -1.973}, {0.877151, -1.996727}, {0.911609749, -2.02858457}});
  }
  SECTION("nesterov") {
    options.nesterov = true;
    check(run(options),
          {{0.9031, -1.9487}, {0.81257411, -2.01812747}, {0.942869708, -2.05728158}});
  }
  SECTION("dampening leaves the first buffer undamped") {
    options.weight_decay = 0;
    options.dampening = 0.5;
    check(run(options), {{0.95, -1.975}, {0.8925, -1.9775}, {0.89075, -1.986}});
  }
  SECTION("nesterov without momentum is refused") {
    options.momentum = 0;
    options.nesterov = true;
    CHECK_THROWS_WITH(run(options), Catch::Contains("nesterov"));
  }
}

TEST_CASE("inverse_sqrt reproduces the spec's golden table", "[optim][schedule]") {
  // Spec §6.4: lr_max 5e-4, W 4000, lr_0 1e-7; n = updates completed.
  InverseSqrtSchedule schedule(5e-4, 4000, 1e-7);
  const std::vector<std::pair<int64_t, double>> table = {
      {0, 1e-7},          {1, 2.24975e-7}, {2000, 2.5005e-4}, {3999, 4.99875e-4},
      {4000, 5e-4},       {16000, 2.5e-4}, {50000, 1.41421e-4}};
  for (const auto& [n, lr] : table) {
    INFO("n = " << n);
    CHECK(six_digits(schedule.lr_at(n)) == six_digits(lr));
    CHECK(schedule.lr_at(n) == Approx(lr).epsilon(1e-5));
  }
  CHECK(schedule.lr_at(0) == 1e-7);  // the first update runs at warmup_init_lr exactly
  CHECK_THROWS_WITH(schedule.lr_at(-1), Catch::Contains("inverse_sqrt"));
  CHECK_THROWS_WITH(InverseSqrtSchedule(5e-4, 0, 1e-7), Catch::Contains("warmup_updates"));
}

TEST_CASE("cosine warms up, anneals over one period and restarts", "[optim][schedule]") {
  // Spec §6.5, the WMT recipe: warmup 10k from 1e-7 to 1e-3, min 1e-7, period 20k.
  // Expected values from the python3 script described at the top of this file.
  CosineOptions options;
  options.lr_max = 1e-3;
  options.lr_min = 1e-7;
  options.warmup_updates = 10000;
  options.warmup_init_lr = 1e-7;
  options.period = 20000;
  CosineSchedule schedule(options);
  const std::vector<std::pair<int64_t, double>> table = {
      {0, 1e-7},          {1, 1.9998999999999998e-07},   {5000, 0.0005000499999999999},
      {9999, 0.00099990001}, {10000, 0.001},             {15000, 0.0008535680352542143},
      {20000, 0.0005000499999999999},                    {29999, 1.0000616788591385e-07},
      {30000, 0.001},     {40000, 0.0005000499999999999}};
  for (const auto& [n, lr] : table) {
    INFO("n = " << n);
    CHECK(schedule.lr_at(n) == Approx(lr).epsilon(1e-12));
  }

  SECTION("t_mult 2 and lr_shrink 0.5: cycles of 10, 20, 40 updates, each peak halved") {
    CosineOptions restart;
    restart.lr_max = 1e-3;
    restart.lr_min = 1e-7;
    restart.warmup_updates = 0;
    restart.period = 10;
    restart.t_mult = 2;
    restart.lr_shrink = 0.5;
    CosineSchedule cycles(restart);
    const std::vector<std::pair<int64_t, double>> expected = {
        {0, 0.001},  {5, 0.0005000499999999999}, {9, 2.456929467823799e-05},
        {10, 0.0005}, {15, 0.00042678401762710717}, {20, 0.00025002499999999997},
        {29, 3.1276070597304636e-06}, {30, 0.00025}, {35, 0.00024048589306975443},
        {70, 0.000125}};
    for (const auto& [n, lr] : expected) {
      INFO("n = " << n);
      CHECK(cycles.lr_at(n) == Approx(lr).epsilon(1e-12));
    }
  }
}

TEST_CASE("fixed schedule is constant", "[optim][schedule]") {
  FixedSchedule schedule(3e-4);
  CHECK(schedule.lr_at(0) == 3e-4);
  CHECK(schedule.lr_at(123456) == 3e-4);
}

TEST_CASE("clip_grad_norm returns the norm before clipping and scales above max_norm",
          "[optim][clip]") {
  Tensor a = Tensor::zeros({2}, true), b = Tensor::zeros({1}, true), unused = Tensor::zeros({3}, true);
  NamedTensors params = {{"a", a}, {"b", b}, {"unused", unused}};
  set_grad(a, {3.0f, 0.0f});
  set_grad(b, {4.0f});  // ‖g‖ = 5; `unused` has no gradient and is ignored

  SECTION("below max_norm nothing changes") {
    CHECK(clip_grad_norm(params, 10.0) == 5.0);
    CHECK(a.grad().to_vector() == std::vector<float>{3.0f, 0.0f});
    CHECK(b.grad().to_vector() == std::vector<float>{4.0f});
  }
  SECTION("max_norm 0 means no clipping") {
    CHECK(clip_grad_norm(params, 0.0) == 5.0);
    CHECK(b.grad().to_vector() == std::vector<float>{4.0f});
  }
  SECTION("above max_norm every gradient is scaled by max_norm / (norm + 1e-6)") {
    CHECK(clip_grad_norm(params, 1.0) == 5.0);
    const double coefficient = 1.0 / (5.0 + 1e-6);
    CHECK(a.grad().to_vector()[0] == Approx(3.0 * coefficient).epsilon(1e-7));
    CHECK(b.grad().to_vector()[0] == Approx(4.0 * coefficient).epsilon(1e-7));
    CHECK(clip_grad_norm(params, 0.0) == Approx(1.0).epsilon(1e-6));
    CHECK_FALSE(unused.has_grad());
  }
  SECTION("a non-finite norm is returned and the gradients are left alone") {
    a.grad_ptr()[1] = INFINITY;
    CHECK(std::isinf(clip_grad_norm(params, 1.0)));
    CHECK(b.grad().to_vector() == std::vector<float>{4.0f});
    a.grad_ptr()[1] = NAN;
    CHECK(std::isnan(clip_grad_norm(params, 1.0)));
    CHECK(b.grad().to_vector() == std::vector<float>{4.0f});
  }
  SECTION("multiply_grads scales every gradient (loss normalisation)") {
    multiply_grads(params, 0.5);
    CHECK(a.grad().to_vector() == std::vector<float>{1.5f, 0.0f});
    CHECK(b.grad().to_vector() == std::vector<float>{2.0f});
    CHECK_FALSE(unused.has_grad());
  }
}

TEST_CASE("parameters without a gradient are skipped and their state is untouched",
          "[optim][adam]") {
  AdamOptions options;
  options.lr = 0.01;
  options.weight_decay = 0.1;  // decay must not touch a skipped parameter either
  Tensor a = Tensor::from_data({2}, {1.0f, 2.0f}, true);
  Tensor b = Tensor::from_data({2}, {3.0f, 4.0f}, true);
  Adam adam({{"a", a}, {"b", b}}, options);

  set_grad(a, {0.1f, 0.2f});
  adam.step();
  adam.zero_grad();
  CHECK_FALSE(a.has_grad());
  CHECK(b.to_vector() == std::vector<float>{3.0f, 4.0f});
  CHECK(adam.param_steps(1) == 0);
  for (const auto& [name, buffer] : adam.state_tensors())
    if (name.find(".b") != std::string::npos) CHECK(buffer.to_vector() == std::vector<float>{0, 0});

  // b's first real update is bias-corrected as a first update: it equals a fresh optimizer's.
  set_grad(a, {0.1f, 0.2f});
  set_grad(b, {-0.3f, 0.5f});
  adam.step();
  Tensor fresh = Tensor::from_data({2}, {3.0f, 4.0f}, true);
  Adam reference({{"b", fresh}}, options);
  set_grad(fresh, {-0.3f, 0.5f});
  reference.step();
  CHECK(b.to_vector() == fresh.to_vector());
  CHECK(adam.param_steps(0) == 2);
  CHECK(adam.param_steps(1) == 1);
  CHECK(adam.updates() == 2);
}

namespace {

// Gradient for update `s` of a toy run: deterministic, different per step and element.
std::vector<float> toy_grad(int s, int64_t n, float phase) {
  std::vector<float> g(n);
  for (int64_t i = 0; i < n; ++i) g[i] = std::sin(0.7f * s + 0.3f * i + phase);
  return g;
}

// A checkpoint as the trainer would write it: copies of the tensors and the json as text.
struct Snapshot {
  NamedTensors tensors;
  std::string json;
};

Snapshot save(const Optimizer& optimizer) {
  Snapshot snapshot;
  for (const auto& [name, tensor] : optimizer.state_tensors())
    snapshot.tensors.emplace_back(name, tensor.clone_data());
  snapshot.json = optimizer.state_json().dump();
  return snapshot;
}

template <typename Opt, typename Options>
void check_resume_is_identical(const Options& options) {
  const std::vector<float> w0 = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f};
  auto make_params = [&](const std::vector<float>& w, const std::vector<float>& b) {
    return NamedTensors{{"layer.weight", Tensor::from_data({2, 3}, w, true)},
                        {"layer.bias", Tensor::from_data({2}, b, true)}};
  };
  auto grads_for = [](NamedTensors& params, int s) {
    set_grad(params[0].second, toy_grad(s, 6, 0.0f));
    if (s != 2) set_grad(params[1].second, toy_grad(s, 2, 1.0f));  // bias skipped at update 2
    else params[1].second.zero_grad();
  };
  InverseSqrtSchedule schedule(1e-2, 3, 1e-4);

  NamedTensors straight = make_params(w0, {0.1f, -0.2f});
  Opt uninterrupted(straight, options);
  NamedTensors first = make_params(w0, {0.1f, -0.2f});
  Opt before(first, options);
  for (int s = 0; s < 4; ++s) {
    for (auto* run : {&straight, &first}) grads_for(*run, s);
    uninterrupted.set_lr(schedule.lr_at(s));
    uninterrupted.step();
    before.set_lr(schedule.lr_at(s));
    before.step();
  }
  Snapshot snapshot = save(before);

  // Resume: fresh parameters holding the saved values, a freshly constructed optimizer.
  NamedTensors resumed = make_params(first[0].second.to_vector(), first[1].second.to_vector());
  Opt after(resumed, options);
  after.load_state(snapshot.tensors, nlohmann::json::parse(snapshot.json));
  CHECK(after.state_json() == before.state_json());
  for (int s = 4; s < 8; ++s) {
    for (auto* run : {&straight, &resumed}) grads_for(*run, s);
    uninterrupted.set_lr(schedule.lr_at(s));
    uninterrupted.step();
    after.set_lr(schedule.lr_at(s));
    after.step();
  }
  for (size_t i = 0; i < straight.size(); ++i) {
    INFO(straight[i].first);
    CHECK(straight[i].second.to_vector() == resumed[i].second.to_vector());  // bit-identical
  }
}

}  // namespace

TEST_CASE("saving and loading optimizer state mid-run continues bit-identically", "[optim]") {
  SECTION("adam") {
    AdamOptions options;
    options.beta2 = 0.98;
    options.weight_decay = 1e-2;
    check_resume_is_identical<Adam>(options);
  }
  SECTION("sgd with nesterov momentum") {
    SgdOptions options;
    options.momentum = 0.9;
    options.nesterov = true;
    options.weight_decay = 1e-3;
    check_resume_is_identical<Sgd>(options);
  }
}

TEST_CASE("state tensors are named after the parameters", "[optim]") {
  Tensor w = Tensor::zeros({2, 3}, true);
  Adam adam({{"decoder.fc1.weight", w}});
  NamedTensors state = adam.state_tensors();
  REQUIRE(state.size() == 2);
  CHECK(state[0].first == "optimizer.exp_avg.decoder.fc1.weight");
  CHECK(state[1].first == "optimizer.exp_avg_sq.decoder.fc1.weight");
  CHECK(state[1].second.shape() == Shape{2, 3});
  nlohmann::json json = adam.state_json();
  CHECK(json["type"] == "adam");
  CHECK(json["param_steps"]["decoder.fc1.weight"] == 0);
}

TEST_CASE("load_state refuses a mismatched checkpoint and names what is wrong", "[optim][errors]") {
  Tensor w = Tensor::zeros({2, 3}, true);
  Adam adam({{"enc.w", w}});
  set_grad(w, std::vector<float>(6, 1.0f));
  adam.step();
  Snapshot good = save(adam);
  const nlohmann::json json = nlohmann::json::parse(good.json);

  Tensor w2 = Tensor::zeros({2, 3}, true);
  Adam target({{"enc.w", w2}});
  const nlohmann::json before = target.state_json();
  // A failed load changes nothing.
  auto unchanged = [&] {
    CHECK(target.state_json() == before);
    for (const auto& [name, buffer] : target.state_tensors())
      CHECK(buffer.to_vector() == std::vector<float>(6, 0.0f));
  };

  SECTION("a missing tensor") {
    NamedTensors tensors = {good.tensors[0]};
    CHECK_THROWS_WITH(target.load_state(tensors, json),
                      Catch::Contains("optimizer.exp_avg_sq.enc.w") && Catch::Contains("[2, 3]"));
    unchanged();
  }
  SECTION("a wrong shape") {
    NamedTensors tensors = good.tensors;
    tensors[1].second = Tensor::zeros({3, 2});
    CHECK_THROWS_WITH(target.load_state(tensors, json),
                      Catch::Contains("optimizer.exp_avg_sq.enc.w") && Catch::Contains("[3, 2]") &&
                          Catch::Contains("[2, 3]"));
    unchanged();
  }
  SECTION("an unknown optimizer tensor") {
    NamedTensors tensors = good.tensors;
    tensors.emplace_back("optimizer.exp_avg.dec.w", Tensor::zeros({1}));
    CHECK_THROWS_WITH(target.load_state(tensors, json), Catch::Contains("optimizer.exp_avg.dec.w"));
    unchanged();
  }
  SECTION("model weights beside the state are ignored") {
    NamedTensors tensors = good.tensors;
    tensors.emplace_back("enc.w", Tensor::zeros({7}));
    target.load_state(tensors, json);
    CHECK(target.state_json() == adam.state_json());
    CHECK(target.state_tensors()[1].second.to_vector() == adam.state_tensors()[1].second.to_vector());
  }
  SECTION("another optimizer type") {
    nlohmann::json other = json;
    other["type"] = "sgd";
    CHECK_THROWS_WITH(target.load_state(good.tensors, other), Catch::Contains("sgd"));
    unchanged();
  }
  SECTION("a missing key") {
    nlohmann::json other = json;
    other.erase("eps");
    CHECK_THROWS_WITH(target.load_state(good.tensors, other), Catch::Contains("'eps'"));
    unchanged();
  }
  SECTION("a parameter the checkpoint does not know") {
    nlohmann::json other = json;
    other["param_steps"].erase("enc.w");
    CHECK_THROWS_WITH(target.load_state(good.tensors, other), Catch::Contains("enc.w"));
    unchanged();
  }
}

TEST_CASE("optimizer construction checks its parameters", "[optim][errors]") {
  Tensor w = Tensor::zeros({2}, true);
  CHECK_THROWS_WITH(Adam({{"w", w}, {"w", Tensor::zeros({2})}}), Catch::Contains("'w' appears twice"));
  CHECK_THROWS_WITH(Adam({{"w", w}, {"tied", w}}), Catch::Contains("same tensor"));
  AdamOptions bad;
  bad.beta2 = 1.0;
  CHECK_THROWS_WITH(Adam({{"w", w}}, bad), Catch::Contains("beta2"));
  Adam adam({{"w", w}});
  CHECK_THROWS_WITH(adam.set_lr(-1), Catch::Contains("learning rate"));
}
