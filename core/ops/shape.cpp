// Shape and index ops: reshape/view, transpose/permute, narrow/slice, concat, split/chunk, expand
// and the embedding gather. Each op's backward closure stands right below its forward
// (contract: accumulate, core/autograd.h). Declarations: core/ops.h. Loops: core/kernels/copy.h.
//
// Views versus copies: every Tensor is contiguous (core/tensor.h), so an op returns a view (a new
// TensorImpl on the same Storage, at some offset) exactly when its result is one contiguous run
// of x's values: reshape always, narrow when nothing varies before the narrowed dim. Everything
// else copies. A view has a gradient buffer of its own; its backward adds that into x's.
#include <array>
#include <string>

#include "core/autograd.h"
#include "core/kernels/copy.h"
#include "core/ops.h"

namespace payless {
namespace {

// Like Shape::normalize, but the error names the op and the tensor.
int checked_dim(const char* op, const Tensor& x, int dim) {
  const int rank = x.rank();
  const int d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) fail(op, ": dim ", dim, " is out of range for ", x.describe());
  return d;
}

template <typename T>
std::string list_str(const std::vector<T>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

// A tensor on x's storage: `offset` floats into it, with `shape`. No history of its own.
Tensor view_of(const Tensor& x, int64_t offset, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl().storage;
  impl->offset = offset;
  impl->shape = shape;
  return Tensor::from_impl(std::move(impl));
}

// The shape `dims` asks for, with its one -1 (if any) replaced so that numel matches x.
Shape resolve_shape(const char* op, const Tensor& x, const std::vector<int64_t>& dims) {
  if (dims.size() > static_cast<size_t>(Shape::kMaxRank))
    fail(op, ": ", list_str(dims), " has more than ", Shape::kMaxRank, " dims");
  int inferred = -1;
  int64_t known = 1;  // product of the given dims
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferred >= 0) fail(op, ": only one dim of ", list_str(dims), " may be -1");
      inferred = static_cast<int>(i);
    } else if (dims[i] < 0) {
      fail(op, ": negative size in ", list_str(dims));
    } else {
      known *= dims[i];
    }
  }
  std::vector<int64_t> out = dims;
  if (inferred >= 0) {
    if (known == 0 || x.numel() % known != 0)
      fail(op, ": cannot view ", x.describe(), " (", x.numel(), " elements) as ", list_str(dims),
           ": no size for the -1 dim makes the element counts match");
    out[inferred] = x.numel() / known;
  } else if (known != x.numel()) {
    fail(op, ": cannot view ", x.describe(), " (", x.numel(), " elements) as ", list_str(dims),
         " (", known, " elements)");
  }
  return Shape(out);
}

// Pads a rank-r shape to 4 dims with leading 1s (the kernels' layout).
std::array<int64_t, 4> padded_dims(const Shape& s) {
  std::array<int64_t, 4> d{1, 1, 1, 1};
  for (int i = 0; i < s.rank(); ++i) d[4 - s.rank() + i] = s[i];
  return d;
}

bool any_needs_grad(const std::vector<Tensor>& xs) {
  if (!grad_enabled()) return false;
  for (const Tensor& x : xs)
    if (x.requires_grad()) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------- reshape / view

Tensor reshape(const Tensor& x, const std::vector<int64_t>& shape) {
  Tensor y = view_of(x, x.impl().offset, resolve_shape("reshape", x, shape));
  if (needs_grad(x)) {
    record(y, [x](const Tensor& dy) mutable {
      const int64_t n = x.numel();  // same values in the same order: dy is x's gradient as is
      const Tensor::GradTarget gx = x.grad_target();
      if (gx.fresh)
        kernels::copy_rows(dy.data(), n, gx.data, n, 1, n);
      else
        kernels::add_rows(dy.data(), n, gx.data, n, 1, n);
    });
  }
  return y;
}

Tensor view(const Tensor& x, const std::vector<int64_t>& shape) { return reshape(x, shape); }

// ---------------------------------------------------------------- permute / transpose

// Output dim i is x dim order[i]. Backward is the inverse permutation applied to dy, added into
// x's gradient: x dim order[i] is dy dim i.
Tensor permute(const Tensor& x, const std::vector<int>& order) {
  const int rank = x.rank();
  if (static_cast<int>(order.size()) != rank)
    fail("permute: order ", list_str(order), " must list each of the ", rank, " dims of ",
         x.describe(), " once");
  std::vector<int> normalized(rank);
  std::vector<bool> seen(rank, false);
  for (int i = 0; i < rank; ++i) {
    const int d = order[i] < 0 ? order[i] + rank : order[i];
    if (d < 0 || d >= rank || seen[d])
      fail("permute: order ", list_str(order), " must list each of the ", rank, " dims of ",
           x.describe(), " once");
    seen[d] = true;
    normalized[i] = d;
  }
  // The same permutation on 4 dims: leading padding dims stay where they are.
  const int pad = 4 - rank;
  std::array<int64_t, 4> in_dims = padded_dims(x.shape());
  std::array<int, 4> order4{0, 1, 2, 3};
  std::vector<int64_t> out_dims(rank);
  for (int i = 0; i < rank; ++i) {
    order4[pad + i] = pad + normalized[i];
    out_dims[i] = x.size(normalized[i]);
  }
  Tensor y = Tensor::empty(Shape(out_dims));
  kernels::permute(x.data(), in_dims.data(), order4.data(), y.data(), /*accumulate=*/false);
  if (needs_grad(x)) {
    std::array<int64_t, 4> dy_dims = padded_dims(y.shape());
    std::array<int, 4> inverse{};
    for (int k = 0; k < 4; ++k) inverse[order4[k]] = k;
    record(y, [x, dy_dims, inverse](const Tensor& dy) mutable {
      const Tensor::GradTarget gx = x.grad_target();  // a fresh buffer is written, not added to
      kernels::permute(dy.data(), dy_dims.data(), inverse.data(), gx.data, /*accumulate=*/!gx.fresh);
    });
  }
  return y;
}

Tensor transpose(const Tensor& x, int dim0, int dim1) {
  const int d0 = checked_dim("transpose", x, dim0), d1 = checked_dim("transpose", x, dim1);
  std::vector<int> order(x.rank());
  for (int i = 0; i < x.rank(); ++i) order[i] = i;
  std::swap(order[d0], order[d1]);
  return permute(x, order);
}

// ---------------------------------------------------------------- narrow / slice

// x seen as (outer, n, inner) around dim; the result is (outer, length, inner), starting at
// element `start` of dim. When outer == 1 that is one contiguous run, hence a view.
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length) {
  const int d = checked_dim("narrow", x, dim);
  const int64_t n = x.size(d);
  if (start < 0 || length < 0 || start + length > n)
    fail("narrow: elements [", start, ", ", start + length, ") of dim ", dim,
         " are out of range for ", x.describe(), " (dim ", dim, " has ", n, ")");
  const int64_t outer = x.shape().outer(d), inner = x.shape().inner(d);
  std::vector<int64_t> dims = x.shape().to_vector();
  dims[d] = length;
  const Shape out_shape(dims);
  Tensor y;
  if (outer == 1) {
    y = view_of(x, x.impl().offset + start * inner, out_shape);
  } else {
    y = Tensor::empty(out_shape);
    kernels::copy_rows(x.data() + start * inner, n * inner, y.data(), length * inner, outer,
                       length * inner);
  }
  if (needs_grad(x)) {
    record(y, [x, start, length, n, outer, inner](const Tensor& dy) mutable {
      kernels::add_rows(dy.data(), length * inner, x.grad_ptr() + start * inner, n * inner, outer,
                        length * inner);
    });
  }
  return y;
}

// Negative start/end count from the end of the dim, as in Python; the range must lie inside it.
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end) {
  const int d = checked_dim("slice", x, dim);
  const int64_t n = x.size(d);
  const int64_t s = start < 0 ? start + n : start, e = end < 0 ? end + n : end;
  if (s < 0 || e > n || s > e)
    fail("slice: [", start, ", ", end, ") of dim ", dim, " is not a range inside ", x.describe(),
         " (dim ", dim, " has ", n, ")");
  return narrow(x, d, s, e - s);
}

// ---------------------------------------------------------------- concat / split / chunk

// Every input seen as (outer, n_i, inner) around dim; the output is (outer, Σ n_i, inner) and
// input i fills columns [offset_i, offset_i + n_i) of each of its outer rows.
Tensor concat(const std::vector<Tensor>& xs, int dim) {
  if (xs.empty()) fail("concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i)
    if (!xs[i].defined()) fail("concat: input ", i, " is an undefined tensor");
  const Tensor& first = xs[0];
  const int d = checked_dim("concat", first, dim);
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool match = s.rank() == first.rank();
    for (int k = 0; match && k < s.rank(); ++k) match = k == d || s[k] == first.shape()[k];
    if (!match)
      fail("concat: input ", i, " ", xs[i].describe(), " does not match input 0 ",
           first.describe(), " (all dims but dim ", dim, " must be equal)");
    total += s[d];
  }
  const int64_t outer = first.shape().outer(d), inner = first.shape().inner(d);
  std::vector<int64_t> dims = first.shape().to_vector();
  dims[d] = total;
  Tensor y = Tensor::empty(Shape(dims));
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.size(d);
    kernels::copy_rows(x.data(), n * inner, y.data() + offset * inner, total * inner, outer,
                       n * inner);
    offset += n;
  }
  if (any_needs_grad(xs)) {
    record(y, [xs, d, outer, inner, total](const Tensor& dy) mutable {
      int64_t offset = 0;
      for (const Tensor& x : xs) {
        const int64_t n = x.size(d);
        if (x.requires_grad())
          kernels::add_rows(dy.data() + offset * inner, total * inner, x.grad_ptr(), n * inner,
                            outer, n * inner);
        offset += n;
      }
    });
  }
  return y;
}

// Each piece is a narrow of x: its own op output with its own backward closure, so a piece that
// no later op used simply receives no gradient.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  const int d = checked_dim("split", x, dim);
  int64_t total = 0;
  bool valid = true;
  for (int64_t s : sizes) {
    valid = valid && s >= 0;
    total += s;
  }
  if (!valid || total != x.size(d))
    fail("split: sizes ", list_str(sizes), " do not add up to dim ", dim, " of ", x.describe());
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(narrow(x, d, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim) {
  const int d = checked_dim("chunk", x, dim);
  if (chunks < 1 || x.size(d) % chunks != 0)
    fail("chunk: dim ", dim, " of ", x.describe(), " cannot be cut into ", chunks,
         " equal parts");
  return split(x, std::vector<int64_t>(chunks, x.size(d) / chunks), d);
}

// ---------------------------------------------------------------- expand

// Shapes aligned at the right; x's stride along a dim it repeats (size 1 in x, larger in the
// output, or missing in x) is 0. y[o] = x[Σ o_k · stride_k];  dx[i] = Σ over o reading i of dy[o].
Tensor expand(const Tensor& x, const Shape& shape) {
  const Shape& s = x.shape();
  bool ok = shape.rank() >= s.rank();
  for (int i = 0; ok && i < s.rank(); ++i) {
    const int64_t target = shape[shape.rank() - s.rank() + i];
    ok = s[i] == target || s[i] == 1;
  }
  if (!ok)
    fail("expand: ", x.describe(), " cannot be broadcast to ", shape.str(),
         " (aligned at the right, each dim must be equal or 1)");
  if (s == shape) return x;  // nothing to repeat
  std::array<int64_t, 4> out_dims = padded_dims(shape), in_dims = padded_dims(s), strides{};
  int64_t stride = 1;
  for (int k = 3; k >= 0; --k) {
    strides[k] = in_dims[k] == out_dims[k] ? stride : 0;
    stride *= in_dims[k];
  }
  Tensor y = Tensor::empty(shape);
  kernels::broadcast_copy(x.data(), strides.data(), out_dims.data(), y.data());
  if (needs_grad(x)) {
    record(y, [x, strides, out_dims](const Tensor& dy) mutable {
      kernels::broadcast_sum(dy.data(), strides.data(), out_dims.data(), x.grad_ptr());
    });
  }
  return y;
}

// ---------------------------------------------------------------- embedding

namespace {

// "[1, 2]": the multi-index of flat position i in `shape`, for error messages.
std::string position_str(const Shape& shape, int64_t i) {
  std::vector<int64_t> index(shape.rank());
  for (int k = shape.rank() - 1; k >= 0; --k) {
    index[k] = i % shape[k];
    i /= shape[k];
  }
  return list_str(index);
}

}  // namespace

// y[p, :] = weight[ids[p], :] for every position p of ids;  dweight[v, :] += Σ_{p: ids[p]=v} dy[p, :]
// except v = padding_idx, whose row gets nothing (padding positions must not train it).
Tensor embedding(const Tensor& weight, const IdTensor& ids, int32_t padding_idx) {
  if (weight.rank() != 2) fail("embedding: weight ", weight.describe(), " must be 2-D (V, C)");
  const int64_t v = weight.size(0), c = weight.size(1);
  if (ids.shape.rank() >= Shape::kMaxRank)
    fail("embedding: ids of shape ", ids.shape.str(), " have more than ", Shape::kMaxRank - 1,
         " dims (the output adds one for C)");
  if (static_cast<int64_t>(ids.values.size()) != ids.numel())
    fail("embedding: ", ids.values.size(), " ids do not fill their shape ", ids.shape.str());
  if (padding_idx < -1 || padding_idx >= v)
    fail("embedding: padding_idx ", padding_idx, " is not a row of weight ", weight.describe(),
         " (pass -1 for none)");
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (ids.values[i] < 0 || ids.values[i] >= v)
      fail("embedding: id ", ids.values[i], " at position ", position_str(ids.shape, i), " of ids ",
           ids.shape.str(), " is out of range for weight ", weight.describe(), " (ids must be in [0, ",
           v, "))");
  std::vector<int64_t> dims = ids.shape.to_vector();
  dims.push_back(c);
  Tensor y = Tensor::empty(Shape(dims));  // (ids..., C)
  kernels::gather_rows(weight.data(), c, ids.values.data(), ids.numel(), y.data());
  if (needs_grad(weight)) {
    record(y, [weight, ids, padding_idx, c](const Tensor& dy) mutable {
      kernels::scatter_add_rows(dy.data(), c, ids.values.data(), ids.numel(), padding_idx,
                                weight.grad_ptr());
    });
  }
  return y;
}

}  // namespace payless
