// Plaintext gemmlowp / TFLite fixed-point arithmetic (int32 raw values held in
// int64), used at prepare time to build the public tables of SOFTMAX and of the
// element-wise activations exactly as TFLite's reference kernels compute them.
#pragma once
#include <cstdint>
#include <utility>

namespace tflite_mpc {
namespace fixedpoint {

using i64 = int64_t;
constexpr i64 kI32Max = (i64(1) << 31) - 1;
constexpr i64 kI32Min = -(i64(1) << 31);

// SaturatingRoundingDoublingHighMul on int32.
inline i64 srdhm(i64 a, i64 b) {
  if (a == kI32Min && b == a) return kI32Max;
  const i64 ab = a * b, s = ab + (ab >= 0 ? (i64(1) << 30) : 1 - (i64(1) << 30));
  return s >= 0 ? s >> 31 : -((-s) >> 31);
}
// RoundingDivideByPOT (ties away from zero), any integer width.
inline i64 rdbpot(i64 x, int e) {
  const i64 mask = (i64(1) << e) - 1, rem = x & mask, thr = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (rem > thr ? 1 : 0);
}
inline i64 wrap32(i64 x) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(x))); }
// SaturatingRoundingMultiplyByPOT<e> on int32.
inline i64 sat_mul_pot(i64 x, int e) {
  if (e == 0) return x;
  if (e < 0) return rdbpot(x, -e);
  const i64 thr = (i64(1) << (31 - e)) - 1;
  if (x > thr) return kI32Max;
  if (x < -thr) return kI32Min;
  return wrap32(x * (i64(1) << e));
}
// TFLite MultiplyByQuantizedMultiplier, default (double rounding) build.
inline i64 mul_by_quantized_multiplier(i64 x, i64 mult, int shift) {
  const int ls = shift > 0 ? shift : 0, rs = shift > 0 ? 0 : -shift;
  return rdbpot(srdhm(wrap32(x * (i64(1) << ls)), mult), rs);
}
// gemmlowp RoundingHalfSum on int32.
inline i64 rounding_half_sum(i64 a, i64 b) {
  const i64 s = a + b;
  return (s + (s >= 0 ? 1 : -1)) / 2;
}
inline i64 exp_quarter(i64 a) {  // exp on [-1/4, 0), Q0.31
  const i64 c = 1895147668, third = 715827883;
  const i64 x = wrap32(a + (i64(1) << 28));
  const i64 x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2), x4q = rdbpot(x4, 2);
  const i64 poly = rdbpot(wrap32(srdhm(wrap32(x4q + x3), third) + x2), 1);
  return wrap32(c + srdhm(c, wrap32(x + poly)));
}
// gemmlowp exp_on_negative_values for a Q(ibits).(31-ibits) input; result Q0.31.
inline i64 exp_negative(i64 a, int ibits) {
  const int fbits = 31 - ibits;
  const i64 quarter = i64(1) << (fbits - 2), mask = quarter - 1;
  const i64 amq = wrap32((a & mask) - quarter);
  i64 r = exp_quarter(sat_mul_pot(amq, ibits));
  const i64 rem = wrap32(amq - a);
  static const std::pair<int, i64> barrel[] = {{-2, 1672461947}, {-1, 1302514674}, {0, 790015084},
                                               {1, 290630308},   {2, 39332535},    {3, 720401}, {4, 242}};
  for (auto [e, m] : barrel)
    if (ibits > e && (rem & (i64(1) << (fbits + e)))) r = srdhm(r, m);
  if (ibits > 5 && a < -(i64(1) << (36 - ibits))) r = 0;
  return a == 0 ? kI32Max : r;
}
// gemmlowp's Newton-Raphson for 1 / half_denominator, half_denominator = (1 + a) / 2
// in Q0.31, a in [0, 1]; result x in Q2.29 (about 2 / (1 + a)).
inline i64 reciprocal_q2(i64 a) {
  const i64 hd = rounding_half_sum(a, kI32Max);
  i64 x = wrap32(1515870810 + srdhm(hd, -1010580540));
  for (int it = 0; it < 3; ++it) {
    const i64 one_minus = wrap32((i64(1) << 29) - srdhm(hd, x));
    x = wrap32(x + sat_mul_pot(srdhm(x, one_minus), 2));
  }
  return x;
}
// gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out).
inline i64 one_over_one_plus_x(i64 a) { return sat_mul_pot(reciprocal_q2(a), 1); }
// gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out).
inline i64 one_minus_x_over_one_plus_x(i64 a) { return sat_mul_pot(wrap32(reciprocal_q2(a) - (i64(1) << 29)), 2); }

}  // namespace fixedpoint
}  // namespace tflite_mpc
