// pack_storages (core/tensor.h) and Module::pack_parameters: moving tensors into one block must
// change where their values live and nothing else.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"
#include "models/language_model.h"
#include "models/sequence_model.h"
#include "tests/support/tiny_models.h"

using namespace payless;

namespace {

Tensor counting(const Shape& shape, float start) {
  Tensor t = Tensor::empty(shape, true);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = start + static_cast<float>(i);
  return t;
}

bool same_values(const Tensor& t, float start) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.data()[i] != start + static_cast<float>(i)) return false;
  return true;
}


}  // namespace

TEST_CASE("pack_storages keeps values, views and ties, and lays the storages out in order",
          "[memory][pack]") {
  Tensor a = counting(Shape{3, 5}, 1.0f), b = counting(Shape{1000}, 100.0f), c = counting(Shape{7}, -3.0f);
  Tensor a_view = reshape(a.detach(), {15});  // shares a's storage
  Tensor tied = a;  // the same tensor registered twice (tied weights)
  const float* old_b = b.data();

  const size_t bytes = pack_storages({a, b, tied, c});
  // Each storage once, rounded up to 64 bytes: 15 -> 64 B, 1000 -> 4000 -> 4032 B, 7 -> 64 B.
  CHECK(bytes == 64 + 4032 + 64);
  CHECK(same_values(a, 1.0f));
  CHECK(same_values(b, 100.0f));
  CHECK(same_values(c, -3.0f));
  CHECK(a_view.data() == a.data());
  CHECK(tied.data() == a.data());
  CHECK(b.data() != old_b);
  // One block, in the order given, each slice 64-byte aligned, the block on a 2 MiB boundary.
  const auto at = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()); };
  CHECK(at(a) % (uintptr_t(2) << 20) == 0);
  CHECK(at(b) == at(a) + 64);
  CHECK(at(c) == at(b) + 4032);
  for (const Tensor* t : {&a, &b, &c, &a_view}) CHECK(in_packed_block(*t));
  CHECK_FALSE(in_packed_block(Tensor::zeros(Shape{4})));

  // Packing again (a model that gained a parameter) moves them once more; the first block
  // is released when its last storage leaves it.
  Tensor d = counting(Shape{9}, 5.0f);
  pack_storages({d, c, b});
  CHECK(same_values(b, 100.0f));
  CHECK(same_values(c, -3.0f));
  CHECK(same_values(d, 5.0f));
  CHECK(at(c) == at(d) + 64);
  CHECK(same_values(a_view, 1.0f));  // a stayed in the first block, which it keeps alive
  // Writes through one handle are seen through the others, as before packing.
  a_view.data()[0] = 42.0f;
  CHECK(a.data()[0] == 42.0f);
}

TEST_CASE("a packed model computes the same loss and gradients as an unpacked one",
          "[memory][pack]") {
  ModelConfig config = testing::tiny_lm_config("dynamic", 40);
  config.dropout = 0.1f;
  config.weight_dropout = 0.1f;
  std::unique_ptr<SequenceModel> packed = build_model(config, 7);
  Rng rng(7);  // build_model's initialisation, without the packing
  LanguageModel plain(config, rng);
  for (const Tensor& p : packed->parameters()) CHECK(in_packed_block(p));
  for (const Tensor& p : plain.parameters()) CHECK_FALSE(in_packed_block(p));
  {
    const auto pp = packed->parameters(), qq = plain.parameters();
    REQUIRE(pp.size() == qq.size());
    for (size_t i = 0; i < pp.size(); ++i) {
      INFO(pp[i].describe());
      CHECK(std::memcmp(pp[i].data(), qq[i].data(), sizeof(float) * pp[i].numel()) == 0);
    }
  }

  Batch batch;
  std::vector<int32_t> input, target;
  for (int i = 0; i < 2 * 6; ++i) input.push_back(2 + (i * 7) % 30), target.push_back(2 + (i * 11) % 30);
  batch.decoder_input = IdTensor(Shape{2, 6}, input);
  batch.target = IdTensor(Shape{2, 6}, target);
  batch.target_tokens = 12;
  auto loss_and_grads = [&](SequenceModel& m) {
    m.train();
    manual_seed(3);  // the same dropout masks for both
    Tensor loss = m.loss(batch, 0.1f, SmoothingVariant::kPaper).loss;
    backward(loss);
    std::vector<float> out{loss.data()[0]};
    for (const Tensor& p : m.parameters()) {
      Tensor g = p.grad();
      REQUIRE(g.defined());
      out.insert(out.end(), g.data(), g.data() + g.numel());
    }
    return out;
  };
  const std::vector<float> from_packed = loss_and_grads(*packed), from_plain = loss_and_grads(plain);
  REQUIRE(from_packed.size() == from_plain.size());
  CHECK(from_packed[0] == from_plain[0]);
  CHECK(std::memcmp(from_packed.data(), from_plain.data(), sizeof(float) * from_plain.size()) == 0);
}
