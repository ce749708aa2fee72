// ARG_MAX / ARG_MIN (int8 or uint8 input, int32 or int64 output), mirroring
// reference_ops::ArgMinMax: for every position outside the axis, the index of
// the first maximum (minimum) along the axis; ties resolve to the lowest index.
// On shares: a tournament over the axis, log2(n) levels of one comparison and
// one product round each. At every level the left candidate of a pair covers
// lower indices than the right one, which wins only if strictly greater
// (smaller), so ties keep the lowest index. Only the index share leaves the
// kernel; the values are never revealed.
#include <cstring>

#include "kernels/kernel.h"

namespace tflite_mpc {

Share arg_best_rows(mpc::Protocol& p, const Share& x, int64_t rows, int64_t len, bool min, int bits) {
  mpc::OpScope scope(p.stats(), min ? "argmin" : "argmax");
  require(rows >= 0 && len > 0 && x.size() == static_cast<size_t>(rows * len), "arg max: bad row layout");
  // candidate values and their (secret) indices, [rows, len] row-major
  Share val = x;
  val.shape = {rows, len};
  std::vector<mpc::u64> iota(static_cast<size_t>(len));
  for (int64_t a = 0; a < len; ++a) iota[a] = static_cast<mpc::u64>(a);
  Share idx = p.add_public(p.mul_public(val, Pub(0)), Pub(iota));
  int64_t L = len;
  while (L > 1) {
    const int64_t half = L / 2, next = (L + 1) / 2;
    auto pick = [&](const Share& s, int64_t offset) {
      return p.linear(s, {rows, half}, [&, offset](const mpc::u64* in, mpc::u64* out) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < half; ++j) out[r * half + j] = in[r * L + 2 * j + offset];
      });
    };
    Share va = pick(val, 0), vb = pick(val, 1), ia = pick(idx, 0), ib = pick(idx, 1);
    Share vd = p.sub(vb, va), id = p.sub(ib, ia);
    // b wins iff b > a (arg max: a - b < 0) or b < a (arg min: b - a < 0)
    Share win = p.msb(min ? vd : p.neg(vd), bits);
    auto prods = p.products({{mpc::Product::kElementwise, &win, &vd, {}}, {mpc::Product::kElementwise, &win, &id, {}}});
    Share nv = p.add(va, prods[0]), ni = p.add(ia, prods[1]);
    // the odd last candidate goes on unchallenged
    auto merge = [&](const Share& won, const Share& prev) {
      Share both = mpc::concat({&won, &prev});
      return p.linear(both, {rows, next}, [&](const mpc::u64* in, mpc::u64* out) {
        const mpc::u64* old = in + rows * half;
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(out + r * next, in + r * half, sizeof(mpc::u64) * half);
          if (next > half) out[r * next + half] = old[r * L + L - 1];
        }
      });
    };
    val = merge(nv, val);
    idx = merge(ni, idx);
    L = next;
  }
  return idx;
}

namespace {

class ArgMinMax : public Kernel {
 public:
  bool min = false;
  int64_t outer = 1, len = 1, inner = 1;
  Shape out_shape;
  const char* name() const override { return min ? "ARG_MIN" : "ARG_MAX"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t rows = outer * inner;
    // [outer, len, inner] -> [outer * inner, len]
    Share x = p.linear(env.get(in()), {rows, len}, [&](const mpc::u64* src, mpc::u64* dst) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t a = 0; a < len; ++a)
          for (int64_t i = 0; i < inner; ++i) dst[(o * inner + i) * len + a] = src[(o * len + a) * inner + i];
    });
    // 8-bit values: a difference fits 10 signed bits
    Share y = arg_best_rows(p, x, rows, len, min, 10);
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_arg_min_max(bool min, const TensorInfo& in, const TensorInfo& axis, const TensorInfo& out) {
  const char* op = min ? "ARG_MIN" : "ARG_MAX";
  require(is_q8(in.type), std::string(op) + ": input must be int8 or uint8, got " + dtype_name(in.type));
  require(out.type == DType::kInt32 || out.type == DType::kInt64,
          std::string(op) + ": output type must be int32 or int64, got " + dtype_name(out.type));
  require(axis.constant && axis.data && (axis.type == DType::kInt32 || axis.type == DType::kInt64) &&
              axis.size() == 1,
          std::string(op) + ": the axis must be a constant int32 or int64 scalar");
  int64_t a = 0;
  if (axis.type == DType::kInt32) {
    int32_t v;
    require(axis.bytes >= 4, std::string(op) + ": axis tensor is truncated");
    std::memcpy(&v, axis.data, 4);
    a = v;
  } else {
    require(axis.bytes >= 8, std::string(op) + ": axis tensor is truncated");
    std::memcpy(&a, axis.data, 8);
  }
  const int64_t rank = static_cast<int64_t>(in.shape.size());
  require(rank >= 1, std::string(op) + ": the input must have at least one dimension");
  if (a < 0) a += rank;
  require(a >= 0 && a < rank, std::string(op) + ": axis out of range");
  auto k = std::make_unique<ArgMinMax>();
  k->min = min;
  Shape expect;
  for (int64_t d = 0; d < rank; ++d) {
    if (d < a) k->outer *= in.shape[d];
    if (d > a) k->inner *= in.shape[d];
    if (d != a) expect.push_back(in.shape[d]);
  }
  k->len = in.shape[a];
  require(k->len > 0, std::string(op) + ": empty axis");
  require(out.shape == expect, std::string(op) + ": output shape " + mpc::shape_str(out.shape) +
                                   " does not match the input without the axis " + mpc::shape_str(expect));
  k->out_shape = out.shape;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
