// Broadcasting binary arithmetic (TF 2.21 BUILTIN_REF integer kernels):
//   ADD, SUB            reference_integer_ops::Add / BroadcastAdd6DSlow (reference_ops for uint8);
//                       sub.cc prepares SUB as ADD with input 2's multiplier negated (op_sign = -1):
//                       v_i = MBQMSmallerThanOneExp((x_i - zp_i) << 20, m_i, s_i), m_i = s_i / (2 max s),
//                       out = clamp(MBQMSmallerThanOneExp(v_1 +- v_2, m_o, s_o) + zp_out),
//                       m_o = 2 max s / (2^20 s_out); rescaling runs on each operand before it is
//                       expanded (element-wise, so it commutes with the broadcast)
//   MUL                 reference_integer_ops::Mul / BroadcastMul6DSlow (reference_ops for uint8):
//                       clamp(zp_out + MultiplyByQuantizedMultiplier((x - zp_x)(y - zp_y), m, s)),
//                       (m, s) = QuantizeMultiplier(s_x s_y / s_out)
//   SQUARED_DIFFERENCE  squared_difference.cc (int8 only, no fused activation, broadcast up to 4-D):
//                       v_i = MBQMSmallerThanOneExp((x_i - zp_i) << 7, m_i, s_i), m_i = s_i / (2 max s),
//                       out = clamp(zp_out + MBQMSmallerThanOneExp((v_1 - v_2)^2, m_o, s_o)),
//                       m_o = (2 max s)^2 / (2^14 s_out)
//   MAXIMUM, MINIMUM    reference_ops::MaximumMinimumBroadcastSlow: the raw 8-bit values are compared
//                       (quantization ignored), broadcast up to 5-D
//   RSQRT (int8)        elementwise.cc RsqrtEvalQuantized: a function of the int8 input, so a
//                       public 256-entry table (mpc::lookup256): v = q - zp_in; v == 0: 127; else
//                       clamp(zp_out + MBQM(MBQM(1, inv_sqrt(v), s_v + 20), M, s - 20)) with
//                       GetInvSqrtQuantizedMultiplierExp and (M, s) = QuantizeMultiplier(1 / (sqrt(s_in) s_out))
//   BATCH_MATMUL        reference_ops::BatchMatMul<int8, int32>: sum_k (l - zp_l)(r - zp_r), then
//                       MultiplyByQuantizedMultiplier(s_l s_r / s_out) + zp_out, clamp; adj_x / adj_y
//                       transpose the last two dimensions, batch dimensions (up to 3) broadcast
// Broadcasting is a public linear map on the shares (expand). A constant operand is the model
// owner's secret (secret_constants): the products are the same secret x secret products.
#include <algorithm>
#include <cmath>

#include "kernels/fixedpoint.h"
#include "kernels/kernel.h"

namespace tflite_mpc {

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b, size_t max_rank) {
  const std::string what = std::string(op) + ": shapes " + mpc::shape_str(a) + " and " + mpc::shape_str(b);
  const size_t r = std::max(a.size(), b.size());
  require(r <= max_rank || a == b, what + " broadcast over more than " + std::to_string(max_rank) +
                                       " dimensions (TFLite's reference kernel supports at most " +
                                       std::to_string(max_rank) + ")");
  Shape out(r);
  for (size_t d = 0; d < r; ++d) {
    const int64_t da = d + a.size() >= r ? a[d + a.size() - r] : 1;
    const int64_t db = d + b.size() >= r ? b[d + b.size() - r] : 1;
    require(da == db || da == 1 || db == 1, what + " do not broadcast");
    out[d] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_index(const Shape& in, const Shape& out) {
  if (in == out) return {};
  const size_t r = out.size(), ri = in.size(), n = mpc::shape_size(out);
  std::vector<int64_t> idx(n);
  std::vector<int64_t> stride(r, 0);  // stride of each output dimension in the input (0: broadcast)
  int64_t s = 1;
  for (size_t k = ri; k-- > 0;) {
    if (in[k] != 1) stride[k + r - ri] = s;
    s *= in[k];
  }
  std::vector<int64_t> c(r, 0);
  int64_t cur = 0;
  for (size_t i = 0; i < n; ++i) {
    idx[i] = cur;
    for (size_t d = r; d-- > 0;) {
      cur += stride[d];
      if (++c[d] < out[d]) break;
      cur -= stride[d] * out[d];
      c[d] = 0;
    }
  }
  return idx;
}

Share expand(mpc::Protocol& p, const Share& x, const Shape& out, const std::vector<int64_t>& index) {
  if (index.empty()) {
    Share y = x;
    y.shape = out;
    return y;
  }
  return p.linear(x, out, [&](const mpc::u64* s, mpc::u64* d) {
    for (size_t i = 0; i < index.size(); ++i) d[i] = s[index[i]];
  });
}

namespace {

Pub pub_int(int64_t v) { return Pub(static_cast<uint64_t>(v)); }

// Two secret operands and one output; a constant operand (a weight, a preprocessing offset)
// is the model owner's secret.
void operands(Kernel& k, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  k.inputs = {a.index, b.index};
  k.outputs = {out.index};
  if (a.constant) k.secret_constants.push_back(a.index);
  if (b.constant && b.index != a.index) k.secret_constants.push_back(b.index);
}

// Common part of the two-operand kernels: operand tensors, broadcast maps, output shape.
class Binary : public Kernel {
 public:
  std::string op;
  int a = -1, b = -1;
  Shape out_shape;
  std::vector<int64_t> a_index, b_index;
  int32_t zp_a = 0, zp_b = 0, zp_out = 0, lo = -128, hi = 127;
  const char* name() const override { return op.c_str(); }
};

template <class K>
std::unique_ptr<K> binary(const char* op, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out,
                          size_t max_rank) {
  const std::string o(op);
  require_q8(a, (o + ": input 1").c_str());
  require_q8(b, (o + ": input 2").c_str());
  require_q8(out, (o + ": output").c_str());
  require(a.type == b.type && a.type == out.type, o + ": inputs and output must have the same type");
  auto k = std::make_unique<K>();
  k->op = op;
  k->out_shape = broadcast_shape(op, a.shape, b.shape, max_rank);
  require(k->out_shape == out.shape, o + ": output shape " + mpc::shape_str(out.shape) +
                                         " is not the broadcast of " + mpc::shape_str(a.shape) + " and " +
                                         mpc::shape_str(b.shape));
  k->a_index = broadcast_index(a.shape, out.shape);
  k->b_index = broadcast_index(b.shape, out.shape);
  k->zp_a = a.zero_point();
  k->zp_b = b.zero_point();
  k->zp_out = out.zero_point();
  k->lo = qmin(out);
  k->hi = qmax(out);
  k->a = a.index;
  k->b = b.index;
  operands(*k, a, b, out);
  return k;
}

// Both operands are rescaled in the same rounds, each at its own size; `sign` -1 for SUB.
std::vector<Share> rescale_operands(Env& env, const Share& x, const Share& y, int32_t zp_x, int32_t zp_y, int left_shift,
                                    int32_t m_x, int32_t m_y, int s_x, int s_y, bool exact) {
  auto& p = env.p;
  Share xs = p.mul_public(p.add_public(x, pub_int(-zp_x)), Pub(uint64_t(1) << left_shift));
  Share ys = p.mul_public(p.add_public(y, pub_int(-zp_y)), Pub(uint64_t(1) << left_shift));
  Share both = mpc::concat({&xs, &ys});
  Pub m = mpc::expand_pub({{x.size(), pub_int(m_x)}, {y.size(), pub_int(m_y)}});
  Shifts s = mpc::expand_shifts({{x.size(), Shifts(s_x)}, {y.size(), Shifts(s_y)}});
  Share r = exact ? mpc::requantize_exact(p, both, m, s) : mpc::requantize_nearest(p, both, m, s, 9 + left_shift);
  return mpc::split(r, {x.shape, y.shape});
}

// ADD / SUB and SQUARED_DIFFERENCE: per-input rescaling to a common scale.
class Rescaled : public Binary {
 public:
  int32_t m_a = 0, m_b = 0, m_out = 0;
  int s_a = 0, s_b = 0, s_out = 0;
};

class AddSub : public Rescaled {
 public:
  static constexpr int kLeftShift = 20;
  void eval(Env& env) const override {
    auto& p = env.p;
    // m_b is negated for SUB: the sum is v_1 - v_2
    auto v = rescale_operands(env, env.get(a), env.get(b), zp_a, zp_b, kLeftShift, m_a, m_b, s_a, s_b, env.exact);
    Share sum = p.add(expand(p, v[0], out_shape, a_index), expand(p, v[1], out_shape, b_index));
    Share o = requantize_output(env, sum, {m_out}, {s_out}, zp_out, lo, hi);
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

class Mul : public Binary {
 public:
  int32_t mult = 0;
  int shift = 0;
  void eval(Env& env) const override {
    auto& p = env.p;
    Share x = expand(p, p.add_public(env.get(a), pub_int(-zp_a)), out_shape, a_index);
    Share y = expand(p, p.add_public(env.get(b), pub_int(-zp_b)), out_shape, b_index);
    // |x|, |y| <= 255: the product fits 17 signed bits
    const NarrowAcc bound = NarrowAcc::bounded(255 * 255);
    Share o = requantize_output(env, p.mul(x, y), {mult}, {shift}, zp_out, lo, hi, false, &bound);
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

class SquaredDifference : public Rescaled {
 public:
  static constexpr int kLeftShift = 7;
  void eval(Env& env) const override {
    auto& p = env.p;
    // Exact in both modes: a rounding error here would be squared.
    auto v = rescale_operands(env, env.get(a), env.get(b), zp_a, zp_b, kLeftShift, m_a, m_b, s_a, s_b, true);
    Share d = p.sub(expand(p, v[0], out_shape, a_index), expand(p, v[1], out_shape, b_index));
    // |d| <= 255 * 2^7: d^2 < 2^30
    Share o = requantize_output(env, p.mul(d, d), {m_out}, {s_out}, zp_out, lo, hi);
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

class MaxMin : public Binary {
 public:
  bool max = true;
  void eval(Env& env) const override {
    auto& p = env.p;
    Share x = expand(p, env.get(a), out_shape, a_index);
    Share y = expand(p, env.get(b), out_shape, b_index);
    // 8-bit values: x - y fits 9 signed bits
    Share m = mpc::max(p, x, y, 10);
    Share o = max ? m : p.sub(p.add(x, y), m);
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

class BatchMatmul : public Kernel {
 public:
  int lhs = -1, rhs = -1;
  Shape out_shape;
  int64_t rows = 0, cols = 0, depth = 0;
  bool adj_x = false, adj_y = false;
  // per output batch: flat batch index of lhs and rhs
  std::vector<int64_t> lhs_batch, rhs_batch;
  int32_t zp_l = 0, zp_r = 0, zp_out = 0, mult = 0, lo = -128, hi = 127;
  int shift = 0;
  const char* name() const override { return "BATCH_MATMUL"; }

  // Matrix `b` of x (batches of [r, c], or [c, r] if transposed) as an [r, c] share.
  static Share matrix(mpc::Protocol& p, const Share& x, int64_t b, int64_t r, int64_t c, bool transposed) {
    return p.linear(x, {r, c}, [=](const mpc::u64* s, mpc::u64* d) {
      const mpc::u64* m = s + b * r * c;
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j) d[i * c + j] = transposed ? m[j * r + i] : m[i * c + j];
    });
  }

  void eval(Env& env) const override {
    auto& p = env.p;
    const Share l = p.add_public(env.get(lhs), pub_int(-zp_l));
    const Share r = p.add_public(env.get(rhs), pub_int(-zp_r));
    const size_t nb = lhs_batch.size();
    std::vector<Share> ls, rs;
    ls.reserve(nb);
    rs.reserve(nb);
    std::vector<mpc::Product> list;
    for (size_t i = 0; i < nb; ++i) {
      ls.push_back(matrix(p, l, lhs_batch[i], rows, depth, adj_x));
      rs.push_back(matrix(p, r, rhs_batch[i], depth, cols, adj_y));
    }
    for (size_t i = 0; i < nb; ++i) list.push_back({mpc::Product::kMatmul, &ls[i], &rs[i], {}});
    std::vector<Share> acc = p.products(list);  // one round for every batch
    std::vector<const Share*> ptrs;
    for (auto& s : acc) ptrs.push_back(&s);
    Share o = requantize_output(env, mpc::concat(ptrs), {mult}, {shift}, zp_out, lo, hi);
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

class Rsqrt : public Kernel {
 public:
  std::vector<mpc::u64> table;  // by uint8(q)
  const char* name() const override { return "RSQRT"; }
  void eval(Env& env) const override { env.set(out(), mpc::lookup256(env.p, env.get(in()), {table})[0]); }
};

// TFLite GetInvSqrtQuantizedMultiplierExp(input, kReverseShift = -1): gemmlowp Newton-Raphson
// in Q3.28 fixed point.
void inv_sqrt_multiplier(int64_t input, int64_t* mult, int* shift) {
  using namespace fixedpoint;
  if (input <= 1) {
    *mult = kI32Max;
    *shift = 0;
    return;
  }
  int sh = 11;
  while (input >= (int64_t(1) << 29)) {
    input /= 4;
    ++sh;
  }
  const unsigned max_left_shift_bits = __builtin_clz(static_cast<uint32_t>(input)) - 1;
  const unsigned left_shift_bit_pairs = max_left_shift_bits / 2 - 1;
  sh -= static_cast<int>(left_shift_bit_pairs);
  input <<= 2 * left_shift_bit_pairs;
  const i64 in_f3 = input >> 1, half_in = sat_mul_pot(in_f3, -1), half_three = (i64(1) << 28) + (i64(1) << 27);
  i64 x = i64(1) << 28;  // F3 one
  for (int i = 0; i < 5; ++i) {
    const i64 x3 = sat_mul_pot(srdhm(srdhm(x, x), x), 6);  // F9 -> F3
    x = sat_mul_pot(wrap32(srdhm(half_three, x) - srdhm(half_in, x3)), 3);  // F6 -> F3
  }
  x = srdhm(x, 1518500250);  // * sqrt(2) / 2 (Q0.31)
  if (sh < 0) {
    x = wrap32(x * (i64(1) << -sh));
    sh = 0;
  }
  *mult = x;
  *shift = -sh;
}

void requantize_params(const char* op, double real, int max_left_shift, int32_t* m, int* s) {
  quantize_multiplier(real, m, s);
  require(*s <= max_left_shift, std::string(op) + ": effective output scale " + std::to_string(real) +
                                    " is too large (TFLite's int32 product would overflow)");
}

// QuantizeMultiplierSmallerThanOneExp of s_i / (2 max s) per input and of `out_real`.
void rescale_params(Rescaled& k, const TensorInfo& a, const TensorInfo& b, double out_real) {
  const double twice_max = 2 * std::max(a.scale(), b.scale());
  quantize_multiplier(a.scale() / twice_max, &k.m_a, &k.s_a);
  quantize_multiplier(b.scale() / twice_max, &k.m_b, &k.s_b);
  quantize_multiplier(out_real, &k.m_out, &k.s_out);
  require(k.s_a <= 0 && k.s_b <= 0 && k.s_out <= 0,
          k.op + ": rescaling multipliers must be smaller than one (TFLite's reference kernel checks it too)");
}

}  // namespace

std::unique_ptr<Kernel> make_add_sub(bool sub, Act act, const TensorInfo& a, const TensorInfo& b,
                                     const TensorInfo& out) {
  auto k = binary<AddSub>(sub ? "SUB" : "ADD", a, b, out, 6);
  const double twice_max = 2 * std::max(a.scale(), b.scale());
  rescale_params(*k, a, b, twice_max / ((1 << AddSub::kLeftShift) * out.scale()));
  if (sub) k->m_b = -k->m_b;
  activation_range(act, out, &k->lo, &k->hi);
  return k;
}

std::unique_ptr<Kernel> make_add(Act act, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  return make_add_sub(false, act, a, b, out);
}

std::unique_ptr<Kernel> make_mul(Act act, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  auto k = binary<Mul>("MUL", a, b, out, 6);
  // |product| <= 255^2 < 2^16: a left shift up to 15 stays in TFLite's int32
  requantize_params("MUL", static_cast<double>(a.scale()) * b.scale() / out.scale(), 15, &k->mult, &k->shift);
  activation_range(act, out, &k->lo, &k->hi);
  return k;
}

std::unique_ptr<Kernel> make_squared_difference(const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  require(a.type == DType::kInt8, "SQUARED_DIFFERENCE: only int8 is supported (as in TFLite's reference kernel)");
  auto k = binary<SquaredDifference>("SQUARED_DIFFERENCE", a, b, out, 4);
  const double twice_max = 2 * std::max(a.scale(), b.scale());
  rescale_params(*k, a, b, twice_max * twice_max / ((1 << (2 * SquaredDifference::kLeftShift)) * out.scale()));
  return k;
}

std::unique_ptr<Kernel> make_max_min(bool max, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  auto k = binary<MaxMin>(max ? "MAXIMUM" : "MINIMUM", a, b, out, 5);
  k->max = max;
  return k;
}

std::unique_ptr<Kernel> make_rsqrt(const TensorInfo& in, const TensorInfo& out) {
  require_int8(in, "RSQRT: input");
  require_int8(out, "RSQRT: output");
  require(in.shape == out.shape, "RSQRT: input and output shapes must match");
  // TFLite fails the inference on an input below the zero point; a secret input cannot be checked
  require(in.zero_point() == -128, "RSQRT: the input zero point must be -128 (TFLite fails at run time on "
                                   "inputs below the zero point, which a secret input cannot be checked for)");
  const double real = 1. / static_cast<double>(std::sqrt(in.scale()) * out.scale());
  int32_t m;
  int s;
  quantize_multiplier(real, &m, &s);
  auto k = std::make_unique<Rsqrt>();
  const int kShift = 20;
  for (int u = 0; u < 256; ++u) {
    const int64_t v = static_cast<int8_t>(static_cast<uint8_t>(u)) - in.zero_point();
    int64_t o = 127;
    if (v != 0) {
      int64_t im;
      int is;
      inv_sqrt_multiplier(v, &im, &is);
      const int64_t data = fixedpoint::mul_by_quantized_multiplier(1, im, is + kShift);
      o = std::min<int64_t>(127, std::max<int64_t>(-128, fixedpoint::mul_by_quantized_multiplier(data, m, s - kShift) +
                                                              out.zero_point()));
    }
    k->table.push_back(static_cast<mpc::u64>(o));
  }
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

std::unique_ptr<Kernel> make_batch_matmul(bool adj_x, bool adj_y, const TensorInfo& lhs, const TensorInfo& rhs,
                                          const TensorInfo& out) {
  require_int8(lhs, "BATCH_MATMUL: lhs");
  require_int8(rhs, "BATCH_MATMUL: rhs");
  require_int8(out, "BATCH_MATMUL: output");
  const size_t rl = lhs.shape.size(), rr = rhs.shape.size();
  require(rl >= 2 && rr >= 2 && rl <= 5 && rr <= 5,
          "BATCH_MATMUL: operands need 2 to 5 dimensions (shapes " + mpc::shape_str(lhs.shape) + " and " +
              mpc::shape_str(rhs.shape) + ")");
  auto k = std::make_unique<BatchMatmul>();
  k->adj_x = adj_x;
  k->adj_y = adj_y;
  k->rows = adj_x ? lhs.shape[rl - 1] : lhs.shape[rl - 2];
  k->depth = adj_x ? lhs.shape[rl - 2] : lhs.shape[rl - 1];
  const int64_t depth_r = adj_y ? rhs.shape[rr - 1] : rhs.shape[rr - 2];
  k->cols = adj_y ? rhs.shape[rr - 2] : rhs.shape[rr - 1];
  require(k->depth == depth_r, "BATCH_MATMUL: inner dimensions differ (shapes " + mpc::shape_str(lhs.shape) + " and " +
                                   mpc::shape_str(rhs.shape) + ")");
  // |sum of depth products of (l - zp)(r - zp)| must fit TFLite's int32 accumulator
  require(k->depth * 255 * 255 < (int64_t(1) << 31), "BATCH_MATMUL: inner dimension too large for int32 accumulators");
  const Shape lb(lhs.shape.begin(), lhs.shape.end() - 2), rb(rhs.shape.begin(), rhs.shape.end() - 2);
  Shape ob = broadcast_shape("BATCH_MATMUL", lb, rb, 3);
  Shape os = ob;
  os.push_back(k->rows);
  os.push_back(k->cols);
  require(os == out.shape, "BATCH_MATMUL: output shape " + mpc::shape_str(out.shape) + " differs from " +
                               mpc::shape_str(os));
  k->out_shape = os;
  const std::vector<int64_t> li = broadcast_index(lb, ob), ri = broadcast_index(rb, ob);
  const size_t nb = mpc::shape_size(ob);
  for (size_t i = 0; i < nb; ++i) {
    k->lhs_batch.push_back(li.empty() ? static_cast<int64_t>(i) : li[i]);
    k->rhs_batch.push_back(ri.empty() ? static_cast<int64_t>(i) : ri[i]);
  }
  requantize_params("BATCH_MATMUL", static_cast<double>(lhs.scale()) * rhs.scale() / out.scale(), 0, &k->mult,
                    &k->shift);
  k->zp_l = lhs.zero_point();
  k->zp_r = rhs.zero_point();
  k->zp_out = out.zero_point();
  k->lhs = lhs.index;
  k->rhs = rhs.index;
  operands(*k, lhs, rhs, out);
  return k;
}

}  // namespace tflite_mpc
