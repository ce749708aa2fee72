// SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128), bit-exact
// with the BUILTIN_REF kernel of TF 2.21 (reference_ops::Softmax, gemmlowp
// fixed point), in both truncation modes. Per row, with d = max - x in [0, 255]:
//   e(d)    = exp_on_negative_values<5>(SRDHM(-d * 2^ls, M))  (0 below diff_min)
//   sum     = sum of RDBPOT(e(d), 12)                           (Q12.19)
//   hp1     = clz32(sum); R = one_over_one_plus_x_for_x_in_0_1((sum << hp1) - 2^31)
//   out     = clamp(RDBPOT(SRDHM(R, e(d)), 35 - hp1) - 128)
// uint8 (scale 1/256, zero point 0): the same with + 0 instead of - 128, clamped to [0, 255].
// Securely: the row maximum is a tournament over groups of up to 32 columns (all pairs of
// a group compared at once); e(d) and RDBPOT(e(d), 12) are public tables looked up with the bits
// of d (mpc::lookup256: two 16-way one-hots); clz comes from comparisons of sum with powers of
// two (the one-hot of the bit length is then linear); the Newton-Raphson steps
// are exact SRDHMs (product + exact truncation); the last rounding shift and the clamp are one
// fused requantization (Protocol::requant).
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
    // 1. row maxima: a tournament over groups of up to 32 columns (int8 values: 10-bit
    //    compares). Within a group every pair is compared in one msb call; the first column
    //    attaining the group's maximum wins (the product of its g - 1 comparison bits, a
    //    product tree), and the winners' values are summed. ceil(log_32(cols)) levels of
    //    msb + ceil(log2(g - 1)) + 1 product rounds, instead of log2(cols) levels of msb + 1.
    Share cur = x;
    int64_t width = cols;
    while (width > 1) {
      const int64_t g = std::min<int64_t>(width, 32), groups = (width + g - 1) / g;
      // column of member m of group q (a short last group repeats its first column, which
      // never wins over the original: the first maximal column wins)
      auto col = [&](int64_t q, int64_t m) { return q * g + m < width ? q * g + m : q * g; };
      std::vector<std::pair<int64_t, int64_t>> pairs;  // (i, j), i < j, members of a group
      for (int64_t i = 0; i < g; ++i)
        for (int64_t j = i + 1; j < g; ++j) pairs.push_back({i, j});
      const int64_t np = static_cast<int64_t>(pairs.size()), w0 = width;
      // b[r, q, t] = [x_i < x_j] for pair t = (i, j) of group q of row r
      Share diff = p.linear(cur, {rows * groups * np}, [&](const mpc::u64* s, mpc::u64* d) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t q = 0; q < groups; ++q)
            for (int64_t t = 0; t < np; ++t)
              d[(r * groups + q) * np + t] = s[r * w0 + col(q, pairs[t].first)] - s[r * w0 + col(q, pairs[t].second)];
      });
      Share lt = p.msb(diff, 10);
      // factor k of member i: [x_j < x_i] = b(j, i) for j < i, [x_i >= x_j] = 1 - b(i, j) for j > i
      std::vector<int64_t> pidx(g * g, -1);
      for (int64_t t = 0; t < np; ++t) pidx[pairs[t].first * g + pairs[t].second] = t;
      const int64_t nf = g - 1, cells = rows * groups * g;
      std::vector<mpc::u64> sign(g * nf), offs(g * nf);
      std::vector<int64_t> src(g * nf);
      for (int64_t i = 0; i < g; ++i)
        for (int64_t k = 0, j = 0; j < g; ++j) {
          if (j == i) continue;
          const bool before = j < i;
          src[i * nf + k] = before ? pidx[j * g + i] : pidx[i * g + j];
          sign[i * nf + k] = before ? 1 : static_cast<mpc::u64>(-1);
          offs[i * nf + k] = before ? 0 : 1;
          ++k;
        }
      // factors laid out factor-major: f[k][cell], cell = (r * groups + q) * g + i
      Share fb = p.linear(lt, {nf * cells}, [&](const mpc::u64* s, mpc::u64* d) {
        for (int64_t k = 0; k < nf; ++k)
          for (int64_t c = 0; c < cells; ++c) {
            const int64_t i = c % g, rq = c / g;
            d[k * cells + c] = s[rq * np + src[i * nf + k]];
          }
      });
      std::vector<mpc::u64> sg(nf * cells), of(nf * cells);
      for (int64_t k = 0; k < nf; ++k)
        for (int64_t c = 0; c < cells; ++c) {
          sg[k * cells + c] = sign[(c % g) * nf + k];
          of[k * cells + c] = offs[(c % g) * nf + k];
        }
      Share f = p.add_public(p.mul_public(fb, Pub(sg)), Pub(of));
      std::vector<Share> fs = mpc::split(f, std::vector<Shape>(nf, Shape{cells}));
      while (fs.size() > 1) {  // product tree over the factors, one round per level
        std::vector<mpc::Product> prods;
        const size_t half = fs.size() / 2;
        for (size_t t = 0; t < half; ++t) prods.push_back({mpc::Product::kElementwise, &fs[2 * t], &fs[2 * t + 1], {}});
        std::vector<Share> next = p.products(prods);
        if (fs.size() & 1) next.push_back(std::move(fs.back()));
        fs = std::move(next);
      }
      Share members = p.linear(cur, {cells}, [&](const mpc::u64* s, mpc::u64* d) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t q = 0; q < groups; ++q)
            for (int64_t i = 0; i < g; ++i) d[(r * groups + q) * g + i] = s[r * w0 + col(q, i)];
      });
      Share picked = p.mul(fs[0], members);
      cur = p.linear(picked, {rows * groups}, [&](const mpc::u64* s, mpc::u64* d) {
        for (int64_t rq = 0; rq < rows * groups; ++rq) {
          mpc::u64 t = 0;
          for (int64_t i = 0; i < g; ++i) t += s[rq * g + i];
          d[rq] = t;
        }
      });
      width = groups;
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
    // v * 2^hp1 < 2^43; floor((v * 2^hp1 + 2^34) / 2^35) clamped to the output range, fused
    mpc::RequantSpec rq;
    rq.mult = Pub(1);
    rq.add = Pub(uint64_t(1) << 34);
    rq.d = Shifts(35);
    rq.lo = Pub(0);
    rq.hi = Pub(static_cast<uint64_t>(static_cast<int64_t>(omax - omin)));
    rq.acc_bits = 45;
    Share z = p.requant(p.mul(v, broadcast_rows(p, P, rows, cols)), rq);
    if (omin != 0) z = p.add_public(z, Pub(static_cast<uint64_t>(static_cast<int64_t>(omin))));
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
