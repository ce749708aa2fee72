// Data movement on secret shares: PAD, PADV2, MIRROR_PAD, CONCATENATION, TRANSPOSE,
// SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, PACK, GATHER, GATHER_ND,
// DEPTH_TO_SPACE, SPACE_TO_DEPTH, RESIZE_NEAREST_NEIGHBOR, TILE, BROADCAST_TO,
// BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND.
//
// Each is a public linear map: every output element is one element of the node's
// secret operands (the data inputs, concatenated in input order; constants among them
// are the model owner's secret) or a public fill value (the output zero point at
// padded positions). The map is computed once, at build time, by running the op's
// index arithmetic (TFLite's reference kernel, TF 2.21) on the public index tensors
// (paddings, permutations, begin/end/strides, indices, block shapes: integer
// constants, public parameters of the graph); eval is one local gather
// (Protocol::linear) per output plus add_public of the fill: no communication.
// Every computed output shape is checked against the shape TFLite gave the output
// tensor, so a disagreement is refused instead of answered.
//
// Quantization: TFLite copies 8-bit values unchanged, so every operand must have the
// output's scale and zero point (TFLite's int8 Prepare checks this for CONCATENATION
// and PADV2's pad value; for the other ops a mismatch is refused here). The exception
// is uint8 CONCATENATION, whose reference kernel (ConcatenationWithScaling) rescales an
// input with other quantization by a float formula: a public 256-entry table of the
// input value, evaluated with mpc::lookup256 (exact in both truncation modes).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

using Index = std::vector<int64_t>;

Index strides_of(const Shape& s) {
  Index st(s.size());
  int64_t acc = 1;
  for (size_t d = s.size(); d-- > 0;) {
    st[d] = acc;
    acc *= s[d];
  }
  return st;
}

int64_t flat_of(const Index& idx, const Index& st) {
  int64_t f = 0;
  for (size_t d = 0; d < idx.size(); ++d) f += idx[d] * st[d];
  return f;
}

// f(index) for every multi-index of `shape`, row-major (the flat order).
template <class F>
void each_index(const Shape& shape, F f) {
  const size_t n = mpc::shape_size(shape);
  Index idx(shape.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

int64_t prod(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t d = from; d < to && d < s.size(); ++d) p *= s[d];
  return p;
}

class MoveKernel : public Kernel {
 public:
  std::string op;
  std::vector<std::vector<mpc::u64>> tables;  // per data input: a rescaling table (uint8 CONCATENATION) or empty
  struct Out {
    Shape shape;
    Index src;                    // flat index into the concatenated operands, -1: fill
    std::vector<mpc::u64> fill;   // per element, added at the -1 positions; empty if none
  };
  std::vector<Out> outs;
  const char* name() const override { return op.c_str(); }

  void eval(Env& env) const override {
    auto& p = env.p;
    std::vector<Share> rescaled;
    rescaled.reserve(inputs.size());
    std::vector<const Share*> xs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Share& s = env.get(inputs[i]);
      if (i < tables.size() && !tables[i].empty()) {
        rescaled.push_back(mpc::lookup256(p, s, {tables[i]})[0]);
        xs.push_back(&rescaled.back());
      } else {
        xs.push_back(&s);
      }
    }
    Share joined;  // several operands: one flat sharing (concat clears the zero-component flags)
    if (xs.size() > 1) joined = mpc::concat(xs);
    const Share& all = xs.size() > 1 ? joined : *xs[0];
    for (size_t k = 0; k < outs.size(); ++k) {
      const Out& o = outs[k];
      Share y = p.linear(all, o.shape, [&](const mpc::u64* in, mpc::u64* out) {
        for (size_t i = 0; i < o.src.size(); ++i) out[i] = o.src[i] < 0 ? 0 : in[o.src[i]];
      });
      if (!o.fill.empty()) y = p.add_public(y, Pub(o.fill));
      y.shape = o.shape;
      env.set(outputs[k], std::move(y));
    }
  }
};

// The index arithmetic of one op: computes each output's shape and source map.
struct Builder {
  std::string op;
  const MovementParams& p;
  const std::vector<TensorInfo>& data;
  std::vector<size_t> expect;  // element count of each of the node's outputs
  Index base;                  // offset of each data input in the concatenated operands
  std::vector<Shape> shapes;
  std::vector<Index> srcs;

  void fail_unless(bool ok, const std::string& what) const { require(ok, op + ": " + what); }
  const Shape& in_shape(size_t k = 0) const { return data.at(k).shape; }
  int rank() const { return static_cast<int>(in_shape().size()); }
  const Index& ints(size_t k, const char* what) const {
    fail_unless(k < p.ints.size(), std::string("missing ") + what);
    return p.ints[k];
  }
  int norm_axis(int64_t axis, int r, const char* what) const {
    const int64_t a = axis < 0 ? axis + r : axis;
    fail_unless(a >= 0 && a < r, std::string(what) + " " + std::to_string(axis) + " out of range for rank " +
                                     std::to_string(r));
    return static_cast<int>(a);
  }
  // Output k of shape `s`, every source -1 for now. Its element count must be the model's
  // (checked before anything is allocated: hostile index values cannot ask for more).
  Index& add_output(const Shape& s) {
    const size_t k = shapes.size();
    fail_unless(k < expect.size(), "more outputs than the node has");
    size_t n = 1;
    for (int64_t d : s) {
      fail_unless(d >= 0 && (d == 0 || n <= expect[k] / static_cast<size_t>(d) + 1),
                  "computed output shape " + mpc::shape_str(s) + " differs from the model's");
      n *= static_cast<size_t>(d);
    }
    fail_unless(n == expect[k], "computed output shape " + mpc::shape_str(s) + " differs from the model's");
    shapes.push_back(s);
    srcs.emplace_back(mpc::shape_size(s), -1);
    return srcs.back();
  }
  // Output whose element at multi-index o comes from src(o) (a flat operand index or -1).
  template <class F>
  void gather(const Shape& s, F src) {
    Index& out = add_output(s);
    size_t i = 0;
    each_index(s, [&](const Index& o) { out[i++] = src(o); });
  }
  void check_rank(int lo, int hi) const {
    fail_unless(rank() >= lo && rank() <= hi, "input rank " + std::to_string(rank()) + " is not supported (TFLite: " +
                                                  std::to_string(lo) + " to " + std::to_string(hi) + ")");
  }

  void pad(bool mirror) {
    const Index& pads = ints(0, "paddings");
    const int r = rank();
    check_rank(1, mirror ? 6 : 5);
    fail_unless(static_cast<int>(pads.size()) == 2 * r, "paddings must have shape [rank, 2]");
    const Shape& in = in_shape();
    const int offset = p.reflect ? 1 : 0;
    Shape os(r);
    for (int d = 0; d < r; ++d) {
      const int64_t before = pads[2 * d], after = pads[2 * d + 1];
      fail_unless(before >= 0 && after >= 0, "negative paddings are not supported");
      if (mirror)
        fail_unless(before <= in[d] - offset && after <= in[d] - offset,
                    std::string("paddings must be at most the dimension") + (offset ? " minus 1 (REFLECT)" : "") +
                        " (TFLite refuses it too)");
      os[d] = in[d] + before + after;
    }
    // PADV2 with a pad value tensor: it is operand 1 (the model owner's constant).
    const int64_t pad_src = data.size() > 1 ? base[1] : -1;
    const Index st = strides_of(in);
    gather(os, [&](const Index& o) -> int64_t {
      int64_t f = 0;
      for (int d = 0; d < r; ++d) {
        int64_t i = o[d] - pads[2 * d];
        if (mirror) {  // mirror_pad.cc GetInputDimension
          const int64_t left = pads[2 * d], n = in[d];
          if (o[d] < left) {
            const int64_t orig = left + offset - 1;
            i = orig - std::min(o[d], orig - offset);
          } else if (i >= n) {
            const int64_t orig = n - (1 + offset);
            i = orig - std::min(i - n, orig);
          }
        } else if (i < 0 || i >= in[d]) {
          return pad_src;
        }
        f += i * st[d];
      }
      return f;
    });
  }

  void concatenation() {
    const int r = rank();
    const int axis = norm_axis(p.axis, r, "axis");
    Shape os = in_shape();
    os[axis] = 0;
    for (size_t k = 0; k < data.size(); ++k) {
      const Shape& s = in_shape(k);
      fail_unless(static_cast<int>(s.size()) == r, "inputs must have the same rank");
      for (int d = 0; d < r; ++d)
        if (d != axis) fail_unless(s[d] == in_shape()[d], "inputs differ outside the concatenation axis");
      os[axis] += s[axis];
    }
    Index& out = add_output(os);
    const Index ost = strides_of(os);
    int64_t at = 0;
    for (size_t k = 0; k < data.size(); ++k) {
      int64_t i = 0;
      each_index(in_shape(k), [&](const Index& idx) {
        Index o = idx;
        o[axis] += at;
        out[flat_of(o, ost)] = base[k] + i++;
      });
      at += in_shape(k)[axis];
    }
  }

  void transpose() {
    const Index& perm = ints(0, "permutation");
    const int r = rank();
    check_rank(0, 6);
    fail_unless(static_cast<int>(perm.size()) == r, "the permutation must have one entry per input dimension");
    std::vector<bool> seen(r, false);
    for (int64_t v : perm) {
      fail_unless(v >= 0 && v < r && !seen[v], "the permutation is not a permutation of 0.." + std::to_string(r - 1));
      seen[v] = true;
    }
    Shape os(r);
    for (int k = 0; k < r; ++k) os[k] = in_shape()[perm[k]];
    const Index st = strides_of(in_shape());
    gather(os, [&](const Index& o) {
      int64_t f = 0;
      for (int k = 0; k < r; ++k) f += o[k] * st[perm[k]];
      return f;
    });
  }

  // Output taking, along each input axis d, count[d] elements from start[d] by stride[d].
  void strided(const Index& start, const Index& stride, const Index& count) {
    const Index st = strides_of(in_shape());
    gather(Shape(count.begin(), count.end()), [&](const Index& o) {
      int64_t f = 0;
      for (size_t d = 0; d < o.size(); ++d) f += (start[d] + o[d] * stride[d]) * st[d];
      return f;
    });
  }

  void slice() {
    const Index &begin = ints(0, "begin"), &size = ints(1, "size");
    const int r = rank();
    check_rank(1, 5);
    fail_unless(static_cast<int>(begin.size()) == r && static_cast<int>(size.size()) == r,
                "begin and size must have one entry per input dimension");
    Index count(r);
    for (int d = 0; d < r; ++d) {
      const int64_t n = in_shape()[d];
      count[d] = size[d] == -1 ? n - begin[d] : size[d];
      fail_unless(begin[d] >= 0 && count[d] >= 0 && begin[d] + count[d] <= n,
                  "begin/size outside the input (TFLite refuses it too)");
    }
    strided(begin, Index(r, 1), count);
    shapes.back() = Shape(count.begin(), count.end());
  }

  // TF's strided slice semantics (dense spec: ellipsis, new axes, shrunk axes), with
  // TFLite's per-axis start / end (strided_slice_logic.h StridedSliceStartForAxis /
  // StridedSliceEndForAxis, including the offset flag).
  void strided_slice() {
    const Index &b = ints(0, "begin"), &e = ints(1, "end"), &s = ints(2, "strides");
    const int r = rank();
    check_rank(1, 5);
    const int n = static_cast<int>(b.size());
    fail_unless(static_cast<int>(e.size()) == n && static_cast<int>(s.size()) == n && n <= 32,
                "begin, end and strides must have the same length");
    const auto bit = [](int mask, int i) { return (mask >> i) & 1; };
    int real = 0;  // specs that consume an input dimension
    bool ellipsis = false;
    for (int i = 0; i < n; ++i) {
      if (bit(p.ellipsis_mask, i)) {
        fail_unless(!ellipsis, "more than one ellipsis");
        ellipsis = true;
      } else if (!bit(p.new_axis_mask, i)) {
        ++real;
      }
    }
    fail_unless(real <= r, "more slice specifications than input dimensions");
    Index start(r, 0), stride(r, 1), count(r);
    Shape os;  // the output shape: new axes added, shrunk axes dropped
    int d = 0;
    const auto full = [&](int dim) {
      count[dim] = in_shape()[dim];
      os.push_back(count[dim]);
    };
    for (int i = 0; i < n; ++i) {
      if (bit(p.ellipsis_mask, i)) {
        const int span = r - real;
        for (int k = 0; k < span; ++k) full(d++);
        continue;
      }
      if (bit(p.new_axis_mask, i)) {
        os.push_back(1);
        continue;
      }
      const int64_t dim = in_shape()[d], st = s[i];
      fail_unless(st != 0, "stride 0");
      int64_t a = b[i];  // StridedSliceStartForAxis
      if (a < 0) a += dim;
      a = st > 0 ? std::clamp<int64_t>(a, 0, dim) : std::clamp<int64_t>(a, -1, dim - 1);
      if (bit(p.begin_mask, i)) a = st > 0 ? 0 : dim - 1;
      int64_t z;  // StridedSliceEndForAxis
      if (bit(p.shrink_axis_mask, i)) {
        fail_unless(a >= 0 && a < dim, "shrunk axis index out of range");
        z = a + 1;
      } else {
        z = e[i];
        if (p.offset) z += a;
        if (z < 0) z += dim;
        z = st > 0 ? std::clamp<int64_t>(z, 0, dim) : std::clamp<int64_t>(z, -1, dim - 1);
        if (bit(p.end_mask, i)) z = st > 0 ? dim : -1;
      }
      const int64_t c = st > 0 ? (z - a + st - 1) / st : (a - z + (-st) - 1) / (-st);
      start[d] = a;
      stride[d] = st;
      count[d] = std::max<int64_t>(0, c);
      if (!bit(p.shrink_axis_mask, i)) os.push_back(count[d]);
      ++d;
    }
    while (d < r) full(d++);
    strided(start, stride, count);
    shapes.back() = os;
  }

  // SPLIT / SPLIT_V: the outputs' own shapes (TFLite resolved -1 sizes) along `axis`.
  void split(const std::vector<TensorInfo>& outs) {
    const int r = rank();
    const int axis = norm_axis(p.axis, r, "axis");
    int64_t at = 0;
    for (const TensorInfo& o : outs) {
      fail_unless(static_cast<int>(o.shape.size()) == r, "output rank differs from the input's");
      for (int d = 0; d < r; ++d)
        if (d != axis) fail_unless(o.shape[d] == in_shape()[d], "output differs from the input outside the split axis");
      Index start(r, 0), stride(r, 1), count(o.shape.begin(), o.shape.end());
      start[axis] = at;
      at += o.shape[axis];
      strided(start, stride, count);
    }
    fail_unless(at == in_shape()[axis], "output sizes do not add up to the input's split dimension");
  }

  void unpack(size_t num) {
    const int r = rank();
    const int axis = norm_axis(p.axis, r, "axis");
    fail_unless(static_cast<int64_t>(num) == in_shape()[axis], "the number of outputs must equal the axis dimension");
    for (size_t k = 0; k < num; ++k) {
      Index start(r, 0), stride(r, 1), count(in_shape().begin(), in_shape().end());
      start[axis] = static_cast<int64_t>(k);
      count[axis] = 1;
      strided(start, stride, count);
      Shape s = in_shape();
      s.erase(s.begin() + axis);
      shapes.back() = s;
    }
  }

  void pack() {
    const int r = rank();
    const int axis = norm_axis(p.axis, r + 1, "axis");
    for (size_t k = 0; k < data.size(); ++k) fail_unless(in_shape(k) == in_shape(), "inputs must have the same shape");
    Shape os = in_shape();
    os.insert(os.begin() + axis, static_cast<int64_t>(data.size()));
    const Index st = strides_of(in_shape());
    gather(os, [&](const Index& o) {
      int64_t f = base[o[axis]];
      for (int d = 0, k = 0; d <= r; ++d)
        if (d != axis) f += o[d] * st[k++];
      return f;
    });
  }

  void gather_op() {
    const Index& ix = ints(0, "indices");
    const Shape& is = p.int_shapes.at(0);
    const int r = rank(), ir = static_cast<int>(is.size());
    const int axis = norm_axis(p.axis, r, "axis");
    const int bd = p.batch_dims < 0 ? p.batch_dims + ir : p.batch_dims;
    fail_unless(bd >= 0 && bd <= ir && bd <= axis, "batch_dims out of range");
    for (int d = 0; d < bd; ++d) fail_unless(is[d] == in_shape()[d], "batch dimensions of input and indices differ");
    const int64_t axis_size = in_shape()[axis];
    for (int64_t v : ix)
      fail_unless(v >= 0 && v < axis_size, "index " + std::to_string(v) + " outside [0, " + std::to_string(axis_size) +
                                               ") (negative or too large; TFLite refuses it too)");
    Shape os(in_shape().begin(), in_shape().begin() + axis);
    os.insert(os.end(), is.begin() + bd, is.end());
    os.insert(os.end(), in_shape().begin() + axis + 1, in_shape().end());
    const int64_t batch = prod(in_shape(), 0, bd), outer = prod(in_shape(), bd, axis),
                  inner = prod(in_shape(), axis + 1, r), coord = prod(is, bd, ir);
    Index& out = add_output(os);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < coord; ++i)
          for (int64_t j = 0; j < inner; ++j)
            out[(((b * outer) + o) * coord + i) * inner + j] =
                ((b * outer + o) * axis_size + ix[b * coord + i]) * inner + j;
  }

  void gather_nd() {
    const Index& ix = ints(0, "indices");
    const Shape& is = p.int_shapes.at(0);
    fail_unless(!is.empty(), "indices must have at least one dimension");
    const int64_t k = is.back();
    fail_unless(k >= 1 && k <= rank(), "index depth must be between 1 and the input rank");
    Shape os(is.begin(), is.end() - 1);
    os.insert(os.end(), in_shape().begin() + k, in_shape().end());
    const int64_t n = prod(is, 0, is.size() - 1), slice = prod(in_shape(), k, rank());
    const Index st = strides_of(in_shape());
    Index& out = add_output(os);
    for (int64_t i = 0; i < n; ++i) {
      int64_t f = 0;
      for (int64_t d = 0; d < k; ++d) {
        const int64_t v = ix[i * k + d];
        fail_unless(v >= 0 && v < in_shape()[d], "index " + std::to_string(v) + " out of range (TFLite refuses it too)");
        f += v * st[d];
      }
      for (int64_t j = 0; j < slice; ++j) out[i * slice + j] = f + j;
    }
  }

  void depth_space(bool to_space) {
    check_rank(4, 4);
    const int64_t bs = p.block_size;
    const Shape& in = in_shape();
    fail_unless(bs >= 1, "block size must be positive");
    Shape os;
    if (to_space) {
      fail_unless(in[3] % (bs * bs) == 0, "depth must be a multiple of block_size^2");
      os = {in[0], in[1] * bs, in[2] * bs, in[3] / (bs * bs)};
    } else {
      fail_unless(in[1] % bs == 0 && in[2] % bs == 0, "height and width must be multiples of block_size");
      os = {in[0], in[1] / bs, in[2] / bs, in[3] * bs * bs};
    }
    const Index st = strides_of(in);
    gather(os, [&](const Index& o) {
      if (to_space) {  // reference_ops::DepthToSpace
        const int64_t d = o[3] + ((o[1] % bs) * bs + o[2] % bs) * os[3];
        return o[0] * st[0] + (o[1] / bs) * st[1] + (o[2] / bs) * st[2] + d;
      }
      // reference_ops::SpaceToDepth, inverted: out depth = in_d + ((h % bs) * bs + w % bs) * in_depth
      const int64_t blk = o[3] / in[3], d = o[3] % in[3];
      return o[0] * st[0] + (o[1] * bs + blk / bs) * st[1] + (o[2] * bs + blk % bs) * st[2] + d;
    });
  }

  void resize_nearest(const Shape& out) {
    check_rank(4, 4);
    fail_unless(out.size() == 4, "output must be 4-D");
    const Index& size = ints(0, "size");
    fail_unless(size.size() == 2 && size[0] == out[1] && size[1] == out[2], "size does not match the output shape");
    const Shape& in = in_shape();
    // reference_ops::ResizeNearestNeighbor GetNearestNeighbor
    const auto nearest = [&](int64_t v, int64_t in_size, int64_t out_size) {
      const float scale = (p.align_corners && out_size > 1)
                              ? static_cast<float>(in_size - 1) / static_cast<float>(out_size - 1)
                              : static_cast<float>(in_size) / static_cast<float>(out_size);
      const float offset = p.half_pixel_centers ? 0.5f : 0.0f;
      const float x = (static_cast<float>(v) + offset) * scale;
      int64_t r = std::min<int64_t>(p.align_corners ? static_cast<int32_t>(std::round(x)) : static_cast<int32_t>(std::floor(x)),
                                    in_size - 1);
      if (p.half_pixel_centers) r = std::max<int64_t>(0, r);
      return r;
    };
    const Index st = strides_of(in);
    gather(Shape{in[0], out[1], out[2], in[3]}, [&](const Index& o) {
      return o[0] * st[0] + nearest(o[1], in[1], out[1]) * st[1] + nearest(o[2], in[2], out[2]) * st[2] + o[3];
    });
  }

  void tile() {
    const Index& m = ints(0, "multiples");
    const int r = rank();
    fail_unless(static_cast<int>(m.size()) == r, "multiples must have one entry per input dimension");
    Shape os(r);
    for (int d = 0; d < r; ++d) {
      fail_unless(m[d] >= 0, "negative multiple");
      os[d] = in_shape()[d] * m[d];
    }
    const Index st = strides_of(in_shape());
    gather(os, [&](const Index& o) {
      int64_t f = 0;
      for (int d = 0; d < r; ++d) f += (o[d] % in_shape()[d]) * st[d];
      return f;
    });
  }

  void broadcast_to() {
    const Index& target = ints(0, "shape");
    const int r = rank(), t = static_cast<int>(target.size());
    fail_unless(t >= r && t <= 8, "target rank must be at least the input's and at most 8");
    for (int d = 0; d < r; ++d) {
      const int64_t i = in_shape()[d], o = target[t - r + d];
      fail_unless(i == o || i == 1, "input shape " + mpc::shape_str(in_shape()) + " does not broadcast to " +
                                        mpc::shape_str(Shape(target.begin(), target.end())));
    }
    const Index st = strides_of(in_shape());
    gather(Shape(target.begin(), target.end()), [&](const Index& o) {
      int64_t f = 0;
      for (int d = 0; d < r; ++d)
        if (in_shape()[d] != 1) f += o[t - r + d] * st[d];
      return f;
    });
  }

  // BATCH_TO_SPACE_ND / SPACE_TO_BATCH_ND on [B, H, W, C] (a 3-D [B, H, C] input is
  // [B, H, 1, C] with block width 1, as TFLite extends it).
  void batch_space(bool to_batch) {
    check_rank(3, 4);
    const Index &block = ints(0, "block_shape"), &pads = ints(1, to_batch ? "paddings" : "crops");
    const int spatial = rank() - 2;
    fail_unless(static_cast<int>(block.size()) == spatial && static_cast<int>(pads.size()) == 2 * spatial,
                "block_shape / " + std::string(to_batch ? "paddings" : "crops") + " must cover the spatial dimensions");
    Shape in = in_shape();
    if (spatial == 1) in.insert(in.begin() + 2, 1);
    const int64_t bh = block[0], bw = spatial == 2 ? block[1] : 1;
    const int64_t top = pads[0], bottom = pads[1], left = spatial == 2 ? pads[2] : 0, right = spatial == 2 ? pads[3] : 0;
    fail_unless(bh >= 1 && bw >= 1, "block shape must be positive");
    fail_unless(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative paddings / crops");
    const Index st = strides_of(in);
    Shape os;
    if (to_batch) {  // reference_ops::SpaceToBatchND
      fail_unless((in[1] + top + bottom) % bh == 0 && (in[2] + left + right) % bw == 0,
                  "padded spatial dimensions must be multiples of the block shape");
      os = {in[0] * bh * bw, (in[1] + top + bottom) / bh, (in[2] + left + right) / bw, in[3]};
      gather(os, [&](const Index& o) -> int64_t {
        const int64_t ib = o[0] % in[0], sw = (o[0] / in[0]) % bw, sh = (o[0] / in[0]) / bw;
        const int64_t h = o[1] * bh + sh - top, w = o[2] * bw + sw - left;
        if (h < 0 || h >= in[1] || w < 0 || w >= in[2]) return -1;
        return ib * st[0] + h * st[1] + w * st[2] + o[3];
      });
    } else {  // reference_ops::BatchToSpaceND
      fail_unless(in[0] % (bh * bw) == 0, "batch must be a multiple of the block size");
      os = {in[0] / (bh * bw), in[1] * bh - top - bottom, in[2] * bw - left - right, in[3]};
      fail_unless(os[1] >= 0 && os[2] >= 0, "crops larger than the output");
      Index& out = add_output(os);
      const Index ost = strides_of(os);
      for (int64_t ib = 0; ib < in[0]; ++ib) {
        const int64_t ob = ib % os[0], off = ib / os[0];
        for (int64_t h = 0; h < in[1]; ++h) {
          const int64_t oh = h * bh + off / bw - top;
          if (oh < 0 || oh >= os[1]) continue;
          for (int64_t w = 0; w < in[2]; ++w) {
            const int64_t ow = w * bw + off % bw - left;
            if (ow < 0 || ow >= os[2]) continue;
            for (int64_t c = 0; c < in[3]; ++c)
              out[ob * ost[0] + oh * ost[1] + ow * ost[2] + c] = ib * st[0] + h * st[1] + w * st[2] + c;
          }
        }
      }
    }
    if (spatial == 1) shapes.back().erase(shapes.back().begin() + 2);
  }
};

const char* movement_name(Movement op) {
  switch (op) {
    case Movement::kPad: return "PAD";
    case Movement::kMirrorPad: return "MIRROR_PAD";
    case Movement::kConcatenation: return "CONCATENATION";
    case Movement::kTranspose: return "TRANSPOSE";
    case Movement::kSlice: return "SLICE";
    case Movement::kStridedSlice: return "STRIDED_SLICE";
    case Movement::kSplit: return "SPLIT";
    case Movement::kUnpack: return "UNPACK";
    case Movement::kPack: return "PACK";
    case Movement::kGather: return "GATHER";
    case Movement::kGatherNd: return "GATHER_ND";
    case Movement::kDepthToSpace: return "DEPTH_TO_SPACE";
    case Movement::kSpaceToDepth: return "SPACE_TO_DEPTH";
    case Movement::kResizeNearest: return "RESIZE_NEAREST_NEIGHBOR";
    case Movement::kTile: return "TILE";
    case Movement::kBroadcastTo: return "BROADCAST_TO";
    case Movement::kBatchToSpace: return "BATCH_TO_SPACE_ND";
    case Movement::kSpaceToBatch: return "SPACE_TO_BATCH_ND";
  }
  return "data movement";
}

bool same_quant(const TensorInfo& a, const TensorInfo& b) {
  return a.scale() == b.scale() && a.zero_point() == b.zero_point();
}

// reference_ops::ConcatenationWithScaling for one uint8 input, as a table of its value.
std::vector<mpc::u64> concat_scaling_table(const TensorInfo& in, const TensorInfo& out) {
  const float inverse_output_scale = 1.f / out.scale();
  const float scale = in.scale() * inverse_output_scale;
  const float bias = -in.zero_point() * scale;
  std::vector<mpc::u64> t(256);
  for (int v = 0; v < 256; ++v) {
    const int32_t value = static_cast<int32_t>(std::round(static_cast<float>(v) * scale + bias)) + out.zero_point();
    t[v] = static_cast<mpc::u64>(std::max(std::min(255, value), 0));
  }
  return t;
}

}  // namespace

std::vector<int64_t> index_values(const TensorInfo& t, const char* what) {
  require(t.constant && t.data, std::string(what) + " must be a constant tensor (a public parameter of the graph)");
  require(t.type == DType::kInt32 || t.type == DType::kInt64, std::string(what) + " must be int32 or int64");
  const size_t n = t.size(), w = t.type == DType::kInt32 ? 4 : 8;
  require(t.bytes >= n * w, std::string(what) + ": constant tensor is truncated");
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (w == 4) {
      int32_t x;
      std::memcpy(&x, t.data + 4 * i, 4);
      v[i] = x;
    } else {
      std::memcpy(&v[i], t.data + 8 * i, 8);
    }
  }
  return v;
}

std::unique_ptr<Kernel> make_movement(Movement op, const MovementParams& p, const std::vector<TensorInfo>& data,
                                      const std::vector<TensorInfo>& outs) {
  const std::string name = movement_name(op);
  require(!data.empty() && !outs.empty(), name + ": missing operands");
  const TensorInfo& out0 = outs[0];
  auto k = std::make_unique<MoveKernel>();
  k->op = name;
  for (const TensorInfo& o : outs) {
    require_q8(o, (name + ": output").c_str());
    require(o.type == out0.type && same_quant(o, out0), name + ": outputs must have the same type and quantization");
  }
  // Weights only move into the output next to data: a node on constants alone would copy
  // the model owner's weights out (the converter folds such nodes anyway).
  require(std::any_of(data.begin(), data.end(), [](const TensorInfo& t) { return !t.constant; }),
          name + ": every operand is a model constant; its output would be a copy of the model owner's weights");
  bool rescale = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const TensorInfo& t = data[i];
    require_q8(t, (name + ": input").c_str());
    require(t.type == out0.type, name + ": input type " + dtype_name(t.type) + " differs from the output type " +
                                     dtype_name(out0.type));
    if (same_quant(t, out0)) continue;
    // Only uint8 CONCATENATION rescales (TFLite's int8 Prepare refuses a mismatch).
    require(op == Movement::kConcatenation && t.type == DType::kUInt8,
            name + ": input " + std::to_string(i) + " quantization (scale " + std::to_string(t.scale()) + ", zero point " +
                std::to_string(t.zero_point()) + ") differs from the output's (scale " + std::to_string(out0.scale()) +
                ", zero point " + std::to_string(out0.zero_point()) +
                "); TFLite copies the values unchanged, so they must match");
    rescale = true;
  }
  if (rescale) {
    k->tables.resize(data.size());
    for (size_t i = 0; i < data.size(); ++i)
      if (!same_quant(data[i], out0)) k->tables[i] = concat_scaling_table(data[i], out0);
  }
  Builder b{name, p, data, {}, {}, {}, {}};
  for (const TensorInfo& o : outs) b.expect.push_back(o.size());
  int64_t at = 0;
  for (const TensorInfo& t : data) {
    b.base.push_back(at);
    at += static_cast<int64_t>(t.size());
  }
  switch (op) {
    case Movement::kPad: b.pad(false); break;
    case Movement::kMirrorPad: b.pad(true); break;
    case Movement::kConcatenation: b.concatenation(); break;
    case Movement::kTranspose: b.transpose(); break;
    case Movement::kSlice: b.slice(); break;
    case Movement::kStridedSlice: b.strided_slice(); break;
    case Movement::kSplit: b.split(outs); break;
    case Movement::kUnpack: b.unpack(outs.size()); break;
    case Movement::kPack: b.pack(); break;
    case Movement::kGather: b.gather_op(); break;
    case Movement::kGatherNd: b.gather_nd(); break;
    case Movement::kDepthToSpace: b.depth_space(true); break;
    case Movement::kSpaceToDepth: b.depth_space(false); break;
    case Movement::kResizeNearest: b.resize_nearest(out0.shape); break;
    case Movement::kTile: b.tile(); break;
    case Movement::kBroadcastTo: b.broadcast_to(); break;
    case Movement::kBatchToSpace: b.batch_space(false); break;
    case Movement::kSpaceToBatch: b.batch_space(true); break;
  }
  require(b.shapes.size() == outs.size(), name + ": expected " + std::to_string(b.shapes.size()) + " outputs, the node has " +
                                              std::to_string(outs.size()));
  const int64_t fill = out0.zero_point();
  for (size_t i = 0; i < outs.size(); ++i) {
    require(b.shapes[i] == outs[i].shape, name + ": computed output shape " + mpc::shape_str(b.shapes[i]) +
                                              " differs from the model's " + mpc::shape_str(outs[i].shape));
    MoveKernel::Out o;
    o.shape = outs[i].shape;
    o.src = std::move(b.srcs[i]);
    for (int64_t v : o.src) require(v < at, name + ": internal: source index outside the operands");
    if (fill != 0 && std::count(o.src.begin(), o.src.end(), -1) > 0) {
      o.fill.assign(o.src.size(), 0);
      for (size_t j = 0; j < o.src.size(); ++j)
        if (o.src[j] < 0) o.fill[j] = static_cast<mpc::u64>(fill);
    }
    k->outs.push_back(std::move(o));
    k->outputs.push_back(outs[i].index);
  }
  for (const TensorInfo& t : data) {
    k->inputs.push_back(t.index);
    if (t.constant && !std::count(k->secret_constants.begin(), k->secret_constants.end(), t.index))
      k->secret_constants.push_back(t.index);
  }
  return k;
}

}  // namespace tflite_mpc
