// Element-wise int8 activations and int8 -> int8 QUANTIZE. Each output is a
// function of one int8 input whose quantization is public, so the exact result
// is a public 256-entry table, built here (prepare time) with the integer
// arithmetic of TFLite's reference kernel for that op (TF 2.21 BUILTIN_REF),
// and evaluated on the secret input with mpc::lookup256: exact in both
// truncation modes.
//   LOGISTIC, TANH   reference_integer_ops::Logistic / Tanh: input rescaled to Q4.27 with
//                    a multiplier > 1 (input_range_radius saturates), gemmlowp
//                    logistic / tanh, RoundingDivideByPOT to 8 bits
//   HARD_SWISH       reference_ops::HardSwish: int16 fixed point (hires input scale
//                    s_in / 128, "reluish" multiplier to 3 / 32768, int16 multipliers)
//   GELU             LUTPopulate with the float transform (erfc, or tanh if approximate)
//   LEAKY_RELU       QuantizeLeakyRelu: identity or alpha multiplier by the sign of x - zp
//   RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1   ReluX: requantize (s_in / s_out), clamp to
//                    zp + round(bound / s_out)
//   QUANTIZE (int8 <-> uint8, int8 -> int8)   Requantize: multiplier s_in / s_out, clamp
// uint8 inputs and outputs (the legacy asymmetric scheme): the same arithmetic (TFLite's
// templates), clamped to [0, 255]; LOGISTIC (reference_ops::Logistic, uint8) outputs scale
// 1/256 zero point 0, TANH 1/128 zero point 128 (RDBPOT(., 24) + 128). The table is indexed by
// the input's low 8 bits: entry u is the input value u (uint8) or int8(u) (int8).
// PRELU's alpha is a constant of the model, hence the model owner's secret: its
// negative branch is not a public table. It mirrors reference_ops::BroadcastPrelu4DSlow:
// x = q - zp_in; x >= 0: zp_out + MBQM(x, s_in / s_out); else zp_out + MBQM(x * (alpha -
// zp_alpha), s_in * s_alpha / s_out); clamp. The identity branch and the sign of x are
// public tables of q (one lookup), the alpha branch is a secret product and the
// requantization of conv layers (exact, or probabilistic within 1 LSB), and the sign
// selects between them with one more product.
#include <cmath>
#include <functional>
#include <limits>

#include "kernels/fixedpoint.h"
#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

using namespace fixedpoint;

class TableKernel : public Kernel {
 public:
  std::string op;
  std::vector<mpc::u64> table;  // by uint8(x), ring encoding of the int8 output
  const char* name() const override { return op.c_str(); }
  void eval(Env& env) const override { env.set(out(), mpc::lookup256(env.p, env.get(in()), {table})[0]); }
};

i64 clamp8(i64 v) { return std::min<i64>(127, std::max<i64>(-128, v)); }

// Input of LOGISTIC / TANH: (in_range_radius, multiplier, left shift) as Prepare computes them
// (4 integer bits, QuantizeMultiplierGreaterThanOne, CalculateInputRadius).
struct Q4Input {
  int32_t mult = 0;
  int shift = 0;
  i64 radius = 0;
};
Q4Input q4_input(const char* op, const TensorInfo& in) {
  const double real = static_cast<double>(in.scale()) * static_cast<double>(1 << 27);
  require(real > 1.0, std::string(op) + ": input scale is too small (TFLite's reference kernel refuses it too)");
  Q4Input r;
  quantize_multiplier(real, &r.mult, &r.shift);
  r.radius = static_cast<i64>(std::floor(1.0 * 15 * static_cast<double>(i64(1) << 27) /
                                         static_cast<double>(i64(1) << r.shift)));
  return r;
}
i64 gemmlowp_logistic(i64 a) {  // Q4.27 -> Q0.31
  if (a == 0) return i64(1) << 30;
  const i64 pos = one_over_one_plus_x(exp_negative(a > 0 ? -a : a, 4));
  return a > 0 ? pos : wrap32(kI32Max - pos);
}
i64 gemmlowp_tanh(i64 a) {  // Q4.27 -> Q0.31
  if (a == 0) return 0;
  const i64 pos = one_minus_x_over_one_plus_x(exp_negative(a < 0 ? a : -a, 5));
  return a < 0 ? -pos : pos;
}

// ---- HARD_SWISH int16 helpers (reference_ops::HardSwish)
i64 sat16(i64 v) { return std::min<i64>(32767, std::max<i64>(-32768, v)); }
i64 srdhm16(i64 a, i64 b) {
  if (a == -32768 && b == -32768) return 32767;
  const i64 ab = a * b, s = ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14));
  return static_cast<int16_t>(s >= 0 ? s >> 15 : -((-s) >> 15));
}
i64 sdhm16(i64 a, i64 b) {  // SaturatingDoublingHighMul (no rounding, C division)
  if (a == -32768 && b == -32768) return 32767;
  return static_cast<int16_t>((a * b) / (1 << 15));
}
int16_t downscale_multiplier(int32_t m) {  // DownScaleInt32ToInt16Multiplier
  if (m >= std::numeric_limits<int32_t>::max() - (1 << 15)) return 32767;
  return static_cast<int16_t>((m + (1 << 15)) >> 16);
}

float gelu(float x) { return 0.5f * x * std::erfc(x * static_cast<float>(-M_SQRT1_2)); }
float gelu_approx(float x) {
  return 0.5f * x * (1.f + std::tanh(static_cast<float>(M_2_SQRTPI / M_SQRT2) * (x + 0.044715f * x * x * x)));
}
// LUTPopulate<int8_t>
i64 lut_entry(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, float (*f)(float), int32_t q,
              i64 omin, i64 omax) {
  const float inverse_scale = 1 / out_scale;
  const float deq = in_scale * static_cast<float>(q - in_zp);
  const float rescaled = std::round(f(deq) * inverse_scale);
  return std::min(omax, std::max(omin, static_cast<i64>(static_cast<int32_t>(rescaled + static_cast<float>(out_zp)))));
}

// ReluX: zp_out + MultiplyByQuantizedMultiplier(q - zp_in), clamped to the activation range.
std::function<i64(int32_t)> relu_x(const TensorInfo& in, const TensorInfo& out, float act_min, float act_max) {
  int32_t m;
  int s;
  quantize_multiplier(static_cast<double>(in.scale() / out.scale()), &m, &s);
  const int32_t zi = in.zero_point(), zo = out.zero_point();
  const i64 omin = qmin(out), omax = qmax(out);
  const i64 lo = std::max<i64>(omin, zo + static_cast<int32_t>(std::round(act_min / out.scale())));
  const i64 hi = std::isinf(act_max) ? omax : std::min<i64>(omax, zo + static_cast<int32_t>(std::round(act_max / out.scale())));
  return [=](int32_t q) { return std::min(hi, std::max(lo, zo + mul_by_quantized_multiplier(q - zi, m, s))); };
}

class Prelu : public Kernel {
 public:
  int alpha = -1;
  std::vector<int64_t> alpha_index;  // per output element: its alpha element (broadcast)
  Shape alpha_shape;
  std::vector<mpc::u64> identity, negative;  // by uint8(q): identity branch, [q - zp_in < 0]
  int32_t zp_in = 0, zp_alpha = 0, zp_out = 0, mult = 0;
  int shift = 0;
  const char* name() const override { return "PRELU"; }
  void eval(Env& env) const override {
    auto& p = env.p;
    const Share& q = env.get(in());
    std::vector<Share> t = mpc::lookup256(p, q, {identity, negative});
    Share a = p.linear(env.get(alpha), q.shape, [&](const mpc::u64* s, mpc::u64* d) {
      for (size_t i = 0; i < alpha_index.size(); ++i) d[i] = s[alpha_index[i]];
    });
    a = p.add_public(a, Pub(static_cast<mpc::u64>(-static_cast<int64_t>(zp_alpha))));
    const Share x = p.add_public(q, Pub(static_cast<mpc::u64>(-static_cast<int64_t>(zp_in))));
    // |x| <= 255, |alpha - zp| <= 255: the product fits 17 signed bits
    const NarrowAcc bound = NarrowAcc::bounded(255 * 255);
    Share neg = requantize_output(env, p.mul(x, a), {mult}, {shift}, zp_out, -128, 127, false, &bound);
    Share y = p.add(t[0], p.mul(t[1], p.sub(neg, t[0])));
    y.shape = q.shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_prelu(const TensorInfo& in, const TensorInfo& alpha, const TensorInfo& out) {
  require_int8(in, "PRELU: input");
  require_int8(alpha, "PRELU: alpha");
  require_int8(out, "PRELU: output");
  require(in.scales.size() == 1 && alpha.scales.size() == 1 && out.scales.size() == 1,
          "PRELU: input, alpha and output must be quantized per tensor");
  require(alpha.constant, "PRELU: alpha must be a constant tensor (a model weight)");
  require(in.shape == out.shape, "PRELU: input and output shapes must match (no broadcast of the input)");
  require(alpha.shape.size() <= in.shape.size(), "PRELU: alpha has more dimensions than the input");
  auto k = std::make_unique<Prelu>();
  // alpha broadcast to the input shape (right-aligned; each alpha dimension 1 or equal)
  const size_t r = in.shape.size(), ra = alpha.shape.size();
  for (size_t d = 0; d < ra; ++d) {
    const int64_t ad = alpha.shape[d], id = in.shape[r - ra + d];
    require(ad == 1 || ad == id, "PRELU: alpha shape " + mpc::shape_str(alpha.shape) + " does not broadcast to input shape " +
                                     mpc::shape_str(in.shape));
  }
  const size_t n = in.size();
  k->alpha_index.resize(n);
  for (size_t i = 0; i < n; ++i) {
    size_t rem = i, ai = 0, astride = 1;
    for (size_t d = r; d-- > 0;) {
      const int64_t dim = in.shape[d], c = static_cast<int64_t>(rem % dim);
      rem /= dim;
      if (d >= r - ra) {
        const int64_t ad = alpha.shape[d - (r - ra)];
        if (ad != 1) ai += c * astride;
        astride *= ad;
      }
    }
    k->alpha_index[i] = static_cast<int64_t>(ai);
  }
  const float si = in.scale(), sa = alpha.scale(), so = out.scale();
  k->zp_in = in.zero_point();
  k->zp_alpha = alpha.zero_point();
  k->zp_out = out.zero_point();
  int32_t m1;
  int s1;
  quantize_multiplier(static_cast<double>(si / so), &m1, &s1);
  quantize_multiplier(static_cast<double>(si * sa / so), &k->mult, &k->shift);
  for (int u = 0; u < 256; ++u) {
    const i64 xq = static_cast<int8_t>(static_cast<uint8_t>(u)) - k->zp_in;
    k->identity.push_back(static_cast<mpc::u64>(clamp8(k->zp_out + mul_by_quantized_multiplier(xq, m1, s1))));
    k->negative.push_back(xq < 0 ? 1 : 0);
  }
  k->inputs = {in.index};
  k->outputs = {out.index};
  k->secret_constants = {alpha.index};
  k->alpha = alpha.index;
  return k;
}

std::unique_ptr<Kernel> make_elementwise(Elementwise op, float param, const TensorInfo& in, const TensorInfo& out) {
  static const char* names[] = {"LOGISTIC", "TANH", "HARD_SWISH", "GELU", "LEAKY_RELU", "RELU",
                                "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "QUANTIZE", "GELU"};
  const std::string name = names[static_cast<int>(op)];
  require_q8(in, (name + ": input").c_str());
  require_q8(out, (name + ": output").c_str());
  require(in.type == out.type || op == Elementwise::kQuantize,
          name + ": input and output types differ (" + dtype_name(in.type) + ", " + dtype_name(out.type) + ")");
  require(in.scales.size() == 1 && out.scales.size() == 1, name + ": input and output must be quantized per tensor");
  require(in.shape == out.shape, name + ": input and output shapes must match");
  const float si = in.scale(), so = out.scale();
  const int32_t zi = in.zero_point(), zo = out.zero_point();
  const i64 omin = qmin(out), omax = qmax(out);
  const bool u8 = out.type == DType::kUInt8;
  auto clampo = [omin, omax](i64 v) { return std::min(omax, std::max(omin, v)); };
  require(si > 0 && so > 0 && std::isfinite(si) && std::isfinite(so), name + ": scales must be positive");
  std::function<i64(int32_t)> f;
  switch (op) {
    case Elementwise::kLogistic:
    case Elementwise::kTanh: {
      const bool logistic = op == Elementwise::kLogistic;
      const int32_t want_zp = logistic ? static_cast<int32_t>(omin) : u8 ? 128 : 0;
      if (logistic)
        require(so == 1.0f / 256 && zo == want_zp, name + ": " + dtype_name(out.type) +
                                                       " output must have scale 1/256 and zero point " +
                                                       std::to_string(want_zp));
      else
        require(so == 1.0f / 128 && zo == want_zp, name + ": " + dtype_name(out.type) +
                                                       " output must have scale 1/128 and zero point " +
                                                       std::to_string(want_zp));
      const Q4Input p = q4_input(name.c_str(), in);
      f = [=](int32_t q) -> i64 {
        const i64 x = q - zi;
        if (x <= -p.radius) return omin;
        if (x >= p.radius) return omax;
        const i64 a = mul_by_quantized_multiplier(x, p.mult, p.shift);
        return logistic ? clampo(rdbpot(gemmlowp_logistic(a), 23) + omin) : clampo(rdbpot(gemmlowp_tanh(a), 24) + zo);
      };
      break;
    }
    case Elementwise::kHardSwish: {
      const float hires = (1.0f / 128.0f) * si;
      int32_t m32;
      int out_exp, relu_exp;
      quantize_multiplier(hires / so, &m32, &out_exp);
      const i64 out_m = downscale_multiplier(m32);
      require(out_exp <= 0, name + ": output scale too small for the input scale (TFLite refuses it too)");
      quantize_multiplier(hires / (3.0f / 32768.0f), &m32, &relu_exp);
      const i64 relu_m = downscale_multiplier(m32);
      f = [=](int32_t q) -> i64 {
        const i64 v = static_cast<int16_t>(q - zi), hv = static_cast<int16_t>(v * 128);
        const i64 pre = srdhm16(hv, out_m);
        i64 r = hv;
        if (relu_exp > 0) r = sat16(r * (i64(1) << (relu_exp - 1)));
        r = srdhm16(r, relu_m);
        if (relu_exp > 0) r = sat16(r * 2);
        if (relu_exp < 0) r = rdbpot(r, -relu_exp);
        r = static_cast<int16_t>((r + (1 << 15)) >> 1);
        const i64 o = static_cast<int16_t>(rdbpot(sdhm16(r, pre), -out_exp) + zo);
        return clampo(o);
      };
      break;
    }
    case Elementwise::kGelu:
    case Elementwise::kGeluApprox: {
      float (*fn)(float) = op == Elementwise::kGelu ? gelu : gelu_approx;
      f = [=](int32_t q) { return lut_entry(si, zi, so, zo, fn, q, omin, omax); };
      break;
    }
    case Elementwise::kLeakyRelu: {
      int32_t ma, mi;
      int sa, sid;
      quantize_multiplier(static_cast<double>(si * param / so), &ma, &sa);
      quantize_multiplier(static_cast<double>(si / so), &mi, &sid);
      f = [=](int32_t q) -> i64 {
        const i64 x = q - zi;
        return clampo(zo + (x >= 0 ? mul_by_quantized_multiplier(x, mi, sid) : mul_by_quantized_multiplier(x, ma, sa)));
      };
      break;
    }
    case Elementwise::kRelu: f = relu_x(in, out, 0.f, std::numeric_limits<float>::infinity()); break;
    case Elementwise::kRelu6: f = relu_x(in, out, 0.f, 6.f); break;
    case Elementwise::kReluN1To1: f = relu_x(in, out, -1.f, 1.f); break;
    case Elementwise::kRelu0To1: f = relu_x(in, out, 0.f, 1.f); break;
    case Elementwise::kQuantize: {
      int32_t m;
      int s;
      quantize_multiplier(static_cast<double>(si) / static_cast<double>(so), &m, &s);
      f = [=](int32_t q) { return clampo(zo + mul_by_quantized_multiplier(q - zi, m, s)); };
      break;
    }
  }
  auto k = std::make_unique<TableKernel>();
  k->op = name;
  const bool in_u8 = in.type == DType::kUInt8;
  for (int u = 0; u < 256; ++u)
    k->table.push_back(static_cast<mpc::u64>(f(in_u8 ? u : static_cast<int8_t>(static_cast<uint8_t>(u)))));
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

namespace {
// TFLite's reference float kernels of the unary ops a float region may hold.
float float_op(const std::string& op, float x) {
  if (op == "NEG") return -x;
  if (op == "ABS") return std::fabs(x);
  if (op == "RELU") return std::max(0.f, x);
  if (op == "RELU6") return std::min(6.f, std::max(0.f, x));
  if (op == "RELU_N1_TO_1") return std::min(1.f, std::max(-1.f, x));
  if (op == "ELU") return x < 0.f ? std::expm1(x) : x;
  if (op == "EXP") return std::exp(x);
  if (op == "SQUARE") return x * x;
  if (op == "TANH") return std::tanh(x);
  if (op == "LOGISTIC") {  // reference_ops::Logistic (float)
    if (x > 16.619047164916992188f) return 1.f;
    if (x < -9.f) return std::exp(x);
    return 1.f / (1.f + std::exp(-x));
  }
  throw ArgError("float op " + op + " has no table form");
}
}  // namespace

bool float_region_op(const std::string& op) {
  static const char* ops[] = {"NEG", "ABS", "RELU", "RELU6", "RELU_N1_TO_1", "ELU", "EXP", "SQUARE", "TANH",
                              "LOGISTIC"};
  for (const char* o : ops)
    if (op == o) return true;
  return false;
}

std::unique_ptr<Kernel> make_float_region(const TensorInfo& in, const std::vector<std::string>& ops,
                                          const TensorInfo& out) {
  require_q8(in, "float region: input");
  require_q8(out, "float region: output");
  require(in.shape == out.shape, "float region: input and output shapes must match");
  std::string name = "FLOAT_REGION(";
  for (size_t i = 0; i < ops.size(); ++i) name += (i ? "," : "") + ops[i];
  name += ")";
  const bool in_u8 = in.type == DType::kUInt8;
  auto k = std::make_unique<TableKernel>();
  k->op = name;
  for (int u = 0; u < 256; ++u) {
    const int64_t q = in_u8 ? u : static_cast<int8_t>(static_cast<uint8_t>(u));
    float x;
    dequantize_output(in, &q, &x, 1);
    for (const auto& op : ops) x = float_op(op, x);
    int64_t y;
    require(std::isfinite(x) && std::fabs(x / out.scale()) < 2e9f,
            "float region " + name + ": input value " + std::to_string(q) +
                " gives a float TFLite would not quantize to a defined value");
    quantize_input(TensorInfo{out.index, {1}, DType::kFloat32}, out, &x, &y, 1);
    k->table.push_back(static_cast<mpc::u64>(y));
  }
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
