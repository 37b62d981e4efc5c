// Shape and index ops (core/ops/shape.cpp): forward values on small hand-built inputs, which ops
// are views, the copy kernels against their reference loop, gradients through the shared
// gradient check (every input used twice, see tests/support/gradcheck.h), and error messages.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/kernels/copy.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace payless;
using namespace payless::testing;
using Inputs = std::vector<Tensor>;
using Floats = std::vector<float>;

namespace {

// A tensor of `shape` holding 0, 1, 2, ... in row-major order.
Tensor counting(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

}  // namespace

// ---------------------------------------------------------------- forward values and views

TEST_CASE("reshape is a view with one inferred dim", "[ops][shape]") {
  Tensor x = counting({2, 3, 4});
  Tensor y = reshape(x, {4, -1});
  CHECK(y.shape() == Shape{4, 6});
  CHECK(y.to_vector() == x.to_vector());
  y.data()[7] = 100.0f;  // writing through the view changes the original
  CHECK(x.data()[7] == 100.0f);
  CHECK(view(x, {24}).data() == x.data());
  CHECK(reshape(Tensor::scalar(3.0f), {1, 1}).shape() == Shape{1, 1});
  CHECK(reshape(x, {-1}).shape() == Shape{24});
}

TEST_CASE("transpose and permute move values", "[ops][shape]") {
  Tensor m = Tensor::from_data({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(transpose(m, 0, 1).shape() == Shape{3, 2});
  CHECK(transpose(m, 0, 1).to_vector() == Floats{1, 4, 2, 5, 3, 6});
  CHECK(transpose(m, -1, -2).to_vector() == Floats{1, 4, 2, 5, 3, 6});

  // The attention reshuffle (B, T, H, D) -> (B, H, T, D) with B=1, T=2, H=2, D=2.
  Tensor x = counting({1, 2, 2, 2});  // x[0, t, h, d] = 4t + 2h + d
  Tensor y = transpose(x, 1, 2);
  CHECK(y.shape() == Shape{1, 2, 2, 2});
  CHECK(y.to_vector() == Floats{0, 1, 4, 5, 2, 3, 6, 7});

  // permute: output dim i is input dim order[i]; compare with direct indexing.
  Tensor z = counting({2, 3, 4});
  Tensor p = permute(z, {2, 0, 1});  // (4, 2, 3)
  REQUIRE(p.shape() == Shape{4, 2, 3});
  bool all_match = true;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        all_match = all_match && p.data()[(c * 2 + a) * 3 + b] == z.data()[(a * 3 + b) * 4 + c];
  CHECK(all_match);
  CHECK(permute(z, {0, 1, 2}).to_vector() == z.to_vector());
  CHECK_FALSE(permute(z, {0, 1, 2}).same_as(z));  // permute always copies
}

TEST_CASE("narrow and slice pick a range, as a view only when it is contiguous", "[ops][shape]") {
  Tensor x = counting({3, 2, 2});
  Tensor rows = narrow(x, 0, 1, 2);
  CHECK(rows.to_vector() == Floats{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(rows.data() == x.data() + 4);  // dim 0: a view at an offset

  Tensor middle = narrow(x, 2, 1, 1);  // (3, 2, 1): a copy
  CHECK(middle.shape() == Shape{3, 2, 1});
  CHECK(middle.to_vector() == Floats{1, 3, 5, 7, 9, 11});
  middle.data()[0] = -1.0f;
  CHECK(x.data()[1] == 1.0f);

  Tensor one = counting({1, 4, 3});  // everything before dim 1 has size 1: a view
  Tensor inner = narrow(one, 1, 2, 2);
  CHECK(inner.data() == one.data() + 6);
  CHECK(inner.to_vector() == Floats{6, 7, 8, 9, 10, 11});

  // A narrow of a view keeps counting from the view's own offset.
  CHECK(narrow(rows, 0, 1, 1).to_vector() == Floats{8, 9, 10, 11});

  CHECK(slice(x, 1, 1, 2).to_vector() == Floats{2, 3, 6, 7, 10, 11});
  CHECK(slice(x, 0, -1, 3).to_vector() == Floats{8, 9, 10, 11});  // negative counts from the end
  CHECK(slice(x, 0, 2, 2).numel() == 0);
}

TEST_CASE("concat, split and chunk", "[ops][shape]") {
  Tensor a = Tensor::from_data({2, 1}, {1, 2});
  Tensor b = Tensor::from_data({2, 2}, {3, 4, 5, 6});
  CHECK(concat({a, b}, 1).to_vector() == Floats{1, 3, 4, 2, 5, 6});
  CHECK(concat({b, reshape(a, {1, 2})}, 0).to_vector() == Floats{3, 4, 5, 6, 1, 2});
  CHECK(concat({a, b, a}, -1).shape() == Shape{2, 4});

  Tensor x = counting({2, 5});
  std::vector<Tensor> parts = split(x, {2, 0, 3}, 1);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].to_vector() == Floats{0, 1, 5, 6});
  CHECK(parts[1].shape() == Shape{2, 0});
  CHECK(parts[2].to_vector() == Floats{2, 3, 4, 7, 8, 9});

  std::vector<Tensor> halves = chunk(counting({2, 4}), 2, 0);
  REQUIRE(halves.size() == 2);
  CHECK(halves[1].to_vector() == Floats{4, 5, 6, 7});
  CHECK(chunk(counting({2, 4}), 4, -1)[3].to_vector() == Floats{3, 7});
}

TEST_CASE("expand repeats size-1 and missing dims", "[ops][shape]") {
  Tensor column = Tensor::from_data({2, 1}, {1, 2});
  CHECK(expand(column, {2, 3}).to_vector() == Floats{1, 1, 1, 2, 2, 2});
  CHECK(expand(Tensor::from_data({3}, {1, 2, 3}), {2, 3}).to_vector() ==
        Floats{1, 2, 3, 1, 2, 3});
  Tensor big = expand(column, {2, 2, 3});
  CHECK(big.shape() == Shape{2, 2, 3});
  CHECK(big.to_vector() == Floats{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  CHECK(expand(Tensor::scalar(5.0f), {2, 2}).to_vector() == Floats{5, 5, 5, 5});
}

TEST_CASE("embedding gathers rows for ids of any shape", "[ops][shape]") {
  Tensor weight = counting({4, 2});  // row v = (2v, 2v+1)
  IdTensor ids({2, 2}, {3, 0, 1, 3});
  Tensor y = embedding(weight, ids);
  CHECK(y.shape() == Shape{2, 2, 2});
  CHECK(y.to_vector() == Floats{6, 7, 0, 1, 2, 3, 6, 7});
  CHECK(embedding(weight, IdTensor({1}, {2})).to_vector() == Floats{4, 5});
}

// ---------------------------------------------------------------- kernels

TEST_CASE("permute and copy kernels match reference loops at odd sizes, 1 and 2 threads",
          "[shape][kernels]") {
  // Big enough (> kParallelMinWork elements) that the 2-thread run really splits the work.
  const int64_t dims[4] = {3, 7, 13, 123};
  const int64_t n = dims[0] * dims[1] * dims[2] * dims[3];
  REQUIRE(n > kParallelMinWork);
  Tensor src = random_input({dims[0], dims[1], dims[2], dims[3]}, 21);
  const int orders[][4] = {{0, 2, 1, 3}, {0, 1, 3, 2}, {3, 2, 1, 0}, {1, 3, 0, 2}, {0, 1, 2, 3}};
  for (int threads : {1, 2}) {
    ThreadScope scope(threads);
    for (const auto& order : orders) {
      INFO("threads " << threads << ", order " << order[0] << order[1] << order[2] << order[3]);
      std::vector<float> fast(n, 0.5f), reference(n, 0.5f);
      kernels::permute(src.data(), dims, order, fast.data(), false);
      kernels::permute_reference(src.data(), dims, order, reference.data(), false);
      CHECK(fast == reference);
      kernels::permute(src.data(), dims, order, fast.data(), true);  // accumulate: now 2·value
      kernels::permute_reference(src.data(), dims, order, reference.data(), true);
      CHECK(fast == reference);
    }
    // Strided rows: the middle 50 of every 123-float row, copied and then added back.
    const int64_t rows = n / 123;
    std::vector<float> block(rows * 50, 0.0f);
    kernels::copy_rows(src.data() + 40, 123, block.data(), 50, rows, 50);
    bool copied = true;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < 50; ++i) copied = copied && block[r * 50 + i] == src.data()[r * 123 + 40 + i];
    CHECK(copied);
    std::vector<float> back(n, 1.0f);
    kernels::add_rows(block.data(), 50, back.data() + 40, 123, rows, 50);
    bool added = true;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < 123; ++i) {
        float expected = (i >= 40 && i < 90) ? 1.0f + src.data()[r * 123 + i] : 1.0f;
        added = added && back[r * 123 + i] == expected;
      }
    CHECK(added);
  }
}

// ---------------------------------------------------------------- gradients

TEST_CASE("reshape, transpose and permute gradients", "[ops][shape][gradcheck]") {
  Tensor x = random_input({2, 3, 2, 4}, 1);
  check_gradients("reshape", {x}, [](const Inputs& in) { return reshape(in[0], {6, -1}); });
  check_gradients("view then mul", {x}, [](const Inputs& in) {
    Tensor v = view(in[0], {4, 12});
    return mul(v, v);  // the view's gradient must reach x through a nonlinear use
  });
  for (int d0 = 0; d0 < 4; ++d0)
    for (int d1 = d0 + 1; d1 < 4; ++d1)
      check_gradients("transpose " + std::to_string(d0) + "," + std::to_string(d1), {x},
                      [d0, d1](const Inputs& in) { return transpose(in[0], d0, d1); });
  check_gradients("permute 3,1,0,2", {x}, [](const Inputs& in) { return permute(in[0], {3, 1, 0, 2}); });
  check_gradients("permute 2-D", {random_input({3, 5}, 2)},
                  [](const Inputs& in) { return permute(in[0], {1, 0}); });
}

TEST_CASE("narrow, slice, concat, split and chunk gradients", "[ops][shape][gradcheck]") {
  Tensor x = random_input({4, 5, 6}, 3);
  check_gradients("narrow dim 0 (view)", {x}, [](const Inputs& in) { return narrow(in[0], 0, 1, 2); });
  check_gradients("narrow dim 1", {x}, [](const Inputs& in) { return narrow(in[0], 1, 2, 3); });
  check_gradients("narrow dim 2", {x}, [](const Inputs& in) { return narrow(in[0], 2, 0, 4); });
  check_gradients("narrow view, nonlinear", {random_input({1, 5, 3}, 4)}, [](const Inputs& in) {
    Tensor v = narrow(in[0], 1, 1, 3);
    return mul(v, v);
  });
  check_gradients("slice", {x}, [](const Inputs& in) { return slice(in[0], -1, 1, -2); });

  Tensor a = random_input({2, 3, 4}, 5), b = random_input({3, 3, 4}, 6), c = random_input({1, 3, 4}, 7);
  check_gradients("concat dim 0", {a, b, c}, [](const Inputs& in) { return concat({in[0], in[1], in[2]}, 0); });
  Tensor d = random_input({2, 1, 4}, 8), e = random_input({2, 4, 4}, 9);
  check_gradients("concat dim 1", {a, d, e}, [](const Inputs& in) { return concat({in[0], in[1], in[2]}, 1); });
  Tensor f = random_input({2, 3, 1}, 10), g = random_input({2, 3, 2}, 11);
  check_gradients("concat last dim", {f, a, g},
                  [](const Inputs& in) { return concat({in[0], in[1], in[2]}, -1); });
  check_gradients("concat with a repeated input", {a, d},
                  [](const Inputs& in) { return concat({in[0], in[1], in[0]}, 1); });

  check_gradients("split even", {random_input({6, 2, 3}, 12)}, [](const Inputs& in) {
    std::vector<Tensor> p = split(in[0], {2, 2, 2}, 0);
    return add(mul(p[0], p[1]), p[2]);
  });
  check_gradients("split uneven", {x}, [](const Inputs& in) {
    std::vector<Tensor> p = split(in[0], {1, 3, 1}, 1);
    return concat({mul(p[2], p[0]), p[1]}, 1);
  });
  check_gradients("chunk last dim", {x}, [](const Inputs& in) {
    std::vector<Tensor> p = chunk(in[0], 3, -1);
    return add(mul(p[0], p[1]), p[2]);
  });
  check_gradients("chunk dim 1", {random_input({2, 6, 2}, 13)}, [](const Inputs& in) {
    std::vector<Tensor> p = chunk(in[0], 3, 1);
    return add(mul(p[0], p[1]), p[2]);
  });
}

TEST_CASE("expand and embedding gradients", "[ops][shape][gradcheck]") {
  check_gradients("expand column", {random_input({3, 1}, 14)},
                  [](const Inputs& in) { return expand(in[0], {2, 3, 4}); });
  check_gradients("expand leading", {random_input({4}, 15)},
                  [](const Inputs& in) { return expand(in[0], {2, 3, 4}); });
  check_gradients("expand middle", {random_input({2, 1, 4}, 16)},
                  [](const Inputs& in) { return expand(in[0], {3, 2, 5, 4}); });

  // Ids repeat (3 twice, 0 twice) so rows collect several contributions. Positions holding the
  // padding id are masked out of the output, as a loss would: then the true gradient of the padding
  // row is zero too, and the finite differences agree with the skipped scatter.
  const int32_t pad = 1;
  IdTensor ids({2, 3}, {3, 0, 1, 0, 3, 4});
  Tensor pad_mask = Tensor::from_data({2, 3, 1}, {0, 0, 1, 0, 0, 0});
  Tensor weight = random_input({5, 3}, 17);
  check_gradients("embedding", {weight}, [ids, pad_mask](const Inputs& in) {
    return masked_fill(embedding(in[0], ids, pad), pad_mask, 0.0f);
  });
}

TEST_CASE("embedding gives the padding row no gradient", "[ops][shape]") {
  Tensor weight = random_input({4, 2}, 18);
  IdTensor ids({3}, {2, 0, 2});
  backward(sum(mul(embedding(weight, ids, /*padding_idx=*/2), Tensor::full({3, 2}, 3.0f))));
  CHECK(weight.grad().to_vector() == Floats{3, 3, 0, 0, 0, 0, 0, 0});
  weight.zero_grad();
  backward(sum(embedding(weight, ids)));  // no padding: row 2 collects both of its uses
  CHECK(weight.grad().to_vector() == Floats{1, 1, 0, 0, 2, 2, 0, 0});
}

TEST_CASE("shape op outputs record nothing under NoGrad", "[ops][shape]") {
  Tensor x = random_input({2, 4}, 19);
  NoGrad no_grad;
  Tensor y = concat(chunk(transpose(reshape(x, {4, 2}), 0, 1), 2, 1), 0);
  CHECK_FALSE(y.requires_grad());
  CHECK(tape_size() == 0);
}

// ---------------------------------------------------------------- errors

TEST_CASE("shape op errors name the op and the shapes", "[ops][shape][errors]") {
  Tensor x = Tensor::zeros({2, 3});
  x.set_name("decoder.proj");
  CHECK_THROWS_WITH(reshape(x, {4, 2}), Catch::Contains("reshape") &&
                                            Catch::Contains("'decoder.proj' [2, 3]") &&
                                            Catch::Contains("[4, 2]"));
  CHECK_THROWS_WITH(reshape(x, {4, -1}), Catch::Contains("[2, 3]") && Catch::Contains("[4, -1]"));
  CHECK_THROWS_WITH(reshape(x, {-1, -1}), Catch::Contains("only one"));

  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({2, 3}), c = Tensor::zeros({4, 2});
  CHECK_THROWS_WITH(concat({a, b, c}, 1), Catch::Contains("concat") && Catch::Contains("input 2") &&
                                              Catch::Contains("[4, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(concat({a, Tensor::zeros({2, 3, 1})}, 0), Catch::Contains("input 1"));
  CHECK_THROWS_WITH(concat({}, 0), Catch::Contains("concat"));

  CHECK_THROWS_WITH(expand(c, {3, 4, 3}), Catch::Contains("expand") && Catch::Contains("[4, 2]") &&
                                              Catch::Contains("[3, 4, 3]"));
  CHECK_THROWS_WITH(expand(c, {2}), Catch::Contains("[4, 2]") && Catch::Contains("[2]"));

  CHECK_THROWS_WITH(narrow(a, 1, 2, 2), Catch::Contains("narrow") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(narrow(a, 2, 0, 1), Catch::Contains("narrow") && Catch::Contains("dim 2"));
  CHECK_THROWS_WITH(slice(a, 0, 2, 1), Catch::Contains("slice"));
  CHECK_THROWS_WITH(split(a, {1, 1}, 1), Catch::Contains("split") && Catch::Contains("[1, 1]"));
  CHECK_THROWS_WITH(chunk(a, 2, 1), Catch::Contains("chunk") && Catch::Contains("2 equal parts"));
  CHECK_THROWS_WITH(permute(a, {0, 0}), Catch::Contains("permute") && Catch::Contains("[0, 0]"));
  CHECK_THROWS_WITH(permute(a, {1, 0, 2}), Catch::Contains("permute"));
  CHECK_THROWS_WITH(transpose(a, 0, 2), Catch::Contains("transpose") && Catch::Contains("dim 2"));
}

TEST_CASE("embedding rejects bad ids and weights", "[ops][shape][errors]") {
  Tensor weight = Tensor::zeros({4, 2});
  weight.set_name("embed_tokens.weight");
  CHECK_THROWS_WITH(embedding(weight, IdTensor({2, 3}, {0, 1, 2, 3, 7, -1})),
                    Catch::Contains("id 7") && Catch::Contains("position [1, 1]") &&
                        Catch::Contains("'embed_tokens.weight' [4, 2]"));
  CHECK_THROWS_WITH(embedding(weight, IdTensor({2}, {-3, 0})), Catch::Contains("id -3"));
  CHECK_THROWS_WITH(embedding(weight, IdTensor({1}, {0}), 4), Catch::Contains("padding_idx 4"));
  CHECK_THROWS_WITH(embedding(Tensor::zeros({4}), IdTensor({1}, {0})), Catch::Contains("2-D"));
  CHECK_THROWS_WITH(embedding(weight, IdTensor({1, 1, 1, 1}, {0})), Catch::Contains("ids"));
}
