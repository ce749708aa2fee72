// SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128), bit-exact
// with the BUILTIN_REF kernel of TF 2.21 (reference_ops::Softmax, gemmlowp
// fixed point), in both truncation modes. Per row, with d = max - x in [0, 255]:
//   e(d)    = exp_on_negative_values<5>(SRDHM(-d * 2^ls, M))  (0 below diff_min)
//   sum     = sum of RDBPOT(e(d), 12)                           (Q12.19)
//   hp1     = clz32(sum); R = one_over_one_plus_x_for_x_in_0_1((sum << hp1) - 2^31)
//   out     = clamp(RDBPOT(SRDHM(R, e(d)), 35 - hp1) - 128)
// uint8 (scale 1/256, zero point 0): the same with + 0 instead of - 128, clamped to [0, 255].
// Securely: e(d) and RDBPOT(e(d), 12) are public tables looked up with the bits
// of d (mpc::lookup256: two 16-way one-hots); clz comes from comparisons of sum with powers of
// two (the one-hot of the bit length is then linear); the Newton-Raphson steps
// are exact SRDHMs (product + exact truncation).
#include <cmath>

#include "kernels/fixedpoint.h"
#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

using namespace fixedpoint;

class Softmax : public Kernel {
 public:
  int64_t rows = 1, cols = 1;
  int32_t omin = -128, omax = 127;  // the output type's range (its minimum is the offset)
  Shape shape;
  std::vector<mpc::u64> exp_table, sum_table;  // by d = 0..255 (ring encoding)
  const char* name() const override { return "SOFTMAX"; }

  static Share broadcast_rows(mpc::Protocol& p, const Share& r, int64_t rows, int64_t cols) {
    return p.linear(r, {rows * cols}, [&](const mpc::u64* s, mpc::u64* d) {
      for (int64_t i = 0; i < rows; ++i) std::fill(d + i * cols, d + (i + 1) * cols, s[i]);
    });
  }
  static Share pub_share(mpc::Protocol& p, const Share& like, i64 v) {  // the constant v, shaped like `like`
    return p.add_public(p.mul_public(like, Pub(0)), Pub(static_cast<uint64_t>(v)));
  }
  // SRDHM(a, b) = floor((a b + 2^30) / 2^31) for any signs (no saturation case here).
  static Share srdhm_s(mpc::Protocol& p, const Share& a, const Share& b) {
    return p.trunc(p.add_public(p.mul(a, b), Pub(uint64_t(1) << 30)), Shifts(31));
  }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t n = rows * cols;
    Share x = env.get(in());
    x.shape = {rows, cols};
    // 1. row maxima: a pairwise tree over the columns (values are int8: 10-bit compares)
    Share cur = x;
    int64_t width = cols;
    while (width > 1) {
      const int64_t half = width / 2, rest = width - half;
      auto pick = [&](int64_t off, int64_t cnt) {
        return p.linear(cur, {rows * cnt}, [&, off, cnt](const mpc::u64* s, mpc::u64* d) {
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cnt; ++c) d[r * cnt + c] = s[r * width + off + 2 * c];
        });
      };
      Share ev = pick(0, half), od = pick(1, half);
      Share m = mpc::max(p, ev, od, 10);
      if (rest > half) {  // odd width: carry the last column along
        Share last = p.linear(cur, {rows}, [&](const mpc::u64* s, mpc::u64* d) {
          for (int64_t r = 0; r < rows; ++r) d[r] = s[r * width + width - 1];
        });
        m = p.linear(mpc::concat({&m, &last}), {rows * rest}, [&](const mpc::u64* s, mpc::u64* d) {
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < half; ++c) d[r * rest + c] = s[r * half + c];
            d[r * rest + half] = s[rows * half + r];
          }
        });
      }
      cur = std::move(m);
      width = rest;
    }
    x.shape = {n};
    Share dval = p.sub(broadcast_rows(p, cur, rows, cols), x);  // d = max - x in [0, 255]
    // 2. table lookups of e(d) and RDBPOT(e(d), 12) (d in [0, 255] is its own index)
    std::vector<Share> looked = mpc::lookup256(p, dval, {exp_table, sum_table});
    const Share &e = looked[0], &e12 = looked[1];
    // 3. sum of exps per row (Q12.19), in [2^19, 2^31)
    Share sum = p.linear(e12, {rows}, [&](const mpc::u64* s, mpc::u64* d) {
      for (int64_t r = 0; r < rows; ++r) {
        mpc::u64 t = 0;
        for (int64_t c = 0; c < cols; ++c) t += s[r * cols + c];
        d[r] = t;
      }
    });
    // 4. c_j = [sum >= 2^j] for j = 20..30; position p of the top bit has one-hot c_p - c_{p+1}
    //    (c_19 = 1, c_31 = 0); P = 2^clz(sum) = sum_p onehot_p 2^(31-p) is linear in the c_j.
    std::vector<const Share*> diffs;
    std::vector<Share> dj;
    for (int j = 20; j <= 30; ++j) dj.push_back(p.add_public(sum, Pub(static_cast<uint64_t>(-(i64(1) << j)))));
    for (auto& s : dj) diffs.push_back(&s);
    std::vector<Share> lt = mpc::split(p.msb(mpc::concat(diffs), 32), std::vector<Shape>(11, Shape{rows}));
    // c_j = 1 - lt_j; P = 2^12 * c_19 + sum_{p=19..30} (c_p - c_{p+1}) 2^(31-p) rewritten in c_j:
    // coefficient of c_j (20 <= j <= 30) is 2^(31-j) - 2^(32-j) = -2^(31-j); constant 2^12.
    Share P = pub_share(p, sum, i64(1) << 12);
    for (int j = 20; j <= 30; ++j) {
      Share c = p.add_public(p.neg(lt[j - 20]), Pub(1));
      P = p.add(P, p.mul_public(c, Pub(static_cast<uint64_t>(-(i64(1) << (31 - j))))));
    }
    // 5. R = 1 / (1 + a), a = sum * P - 2^31 in [0, 2^31): gemmlowp Newton-Raphson
    Share a = p.add_public(p.mul(sum, P), Pub(static_cast<uint64_t>(-(i64(1) << 31))));
    Share hd = p.trunc(p.add_public(a, Pub(uint64_t(1) << 31)), Shifts(1));  // RoundingHalfSum(a, 1.0)
    Share xr = p.add_public(
        p.trunc(p.add_public(p.mul_public(hd, Pub(static_cast<uint64_t>(i64(-1010580540)))), Pub(uint64_t(1) << 30)),
                Shifts(31)),
        Pub(static_cast<uint64_t>(1515870810)));
    for (int it = 0; it < 3; ++it) {
      Share hdx = srdhm_s(p, hd, xr);
      Share one_minus = p.add_public(p.neg(hdx), Pub(uint64_t(1) << 29));
      xr = p.add(xr, p.mul_public(srdhm_s(p, xr, one_minus), Pub(4)));
    }
    Share R = p.mul_public(xr, Pub(2));  // Rescale<0>(ExactMulByPot<-1>(x)); never saturates here
    // 6. out = clamp(RDBPOT(SRDHM(R, e), 35 - hp1) - 128); for v >= 0 the rounding shift
    //    equals floor((v * 2^hp1 + 2^34) / 2^35).
    Share v = srdhm_s(p, broadcast_rows(p, R, rows, cols), e);
    Share z = p.trunc(p.add_public(p.mul(v, broadcast_rows(p, P, rows, cols)), Pub(uint64_t(1) << 34)), Shifts(35));
    if (omin != 0) z = p.add_public(z, Pub(static_cast<uint64_t>(static_cast<int64_t>(omin))));
    z = mpc::clamp(p, z, Pub(static_cast<uint64_t>(static_cast<int64_t>(omin))),
                   Pub(static_cast<uint64_t>(static_cast<int64_t>(omax))), 12);
    z.shape = shape;
    env.set(out(), std::move(z));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_softmax(float beta, const TensorInfo& in, const TensorInfo& out) {
  require_q8(in, "input");
  require_q8(out, "output");
  require(in.type == out.type, "SOFTMAX: input and output types differ");
  require(in.shape == out.shape && !in.shape.empty(), "SOFTMAX: input and output shapes must match");
  require(std::fabs(out.scale() - 1.0f / 256) < 1e-9f && out.zero_point() == qmin(out),
          std::string("SOFTMAX: ") + dtype_name(out.type) + " output must have scale 1/256 and zero point " +
              std::to_string(qmin(out)));
  auto k = std::make_unique<Softmax>();
  k->omin = qmin(out);
  k->omax = qmax(out);
  k->cols = in.shape.back();
  k->rows = static_cast<int64_t>(in.size()) / k->cols;
  k->shape = in.shape;
  require(k->cols <= 4096, "SOFTMAX: rows longer than 4096 are not supported");
  // SoftmaxPrepare (reference): PreprocessSoftmaxScaling(beta, scale, 5), CalculateInputRadius.
  const double real = std::min(static_cast<double>(static_cast<float>(beta)) * static_cast<double>(in.scale()) *
                                   static_cast<double>(i64(1) << 26),
                               static_cast<double>(kI32Max));
  // QuantizeMultiplierGreaterThanOne CHECKs real > 1: at or below it TFLite's reference kernel
  // aborts the process (SIGABRT, measured with TF 2.21 BUILTIN_REF: input scale 2^-26 aborts,
  // the next float32 above runs). The same bound here: accepted exactly where a reference exists.
  require(real > 1.0, "SOFTMAX: beta * input_scale * 2^26 = " + std::to_string(real) +
                          " must exceed 1 (input scale above " + std::to_string(std::ldexp(1.0, -26) / beta) +
                          " for beta " + std::to_string(beta) +
                          "); TFLite's reference SOFTMAX aborts the process on this model too "
                          "(QuantizeMultiplierGreaterThanOne)");
  int32_t mult;
  int ls;
  quantize_multiplier(real, &mult, &ls);
  const i64 diff_min = -static_cast<i64>(std::floor(1.0 * ((1 << 5) - 1) * static_cast<double>(i64(1) << 26) /
                                                    static_cast<double>(i64(1) << ls)));
  for (int d = 0; d < 256; ++d) {
    i64 e = 0;
    if (-d >= diff_min) e = exp_negative(srdhm(-static_cast<i64>(d) * (i64(1) << ls), mult), 5);
    k->exp_table.push_back(static_cast<mpc::u64>(e));
    k->sum_table.push_back(static_cast<mpc::u64>(rdbpot(e, 12)));
  }
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
