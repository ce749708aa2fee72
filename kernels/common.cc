#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernel.h"

namespace tflite_mpc {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kInt8: return "int8";
    case DType::kUInt8: return "uint8";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kBool: return "bool";
    default: return "unsupported type";
  }
}

const Share& Env::get(int index) const {
  auto it = vals.find(index);
  if (it == vals.end()) throw mpc::Error("internal: secret tensor " + std::to_string(index) + " not available");
  return it->second;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw ArgError(what);
}

void require_int8(const TensorInfo& t, const char* role) {
  const std::string r(role);
  require(t.type == DType::kInt8, r + " tensor must be int8, got " + dtype_name(t.type));
  require(!t.scales.empty(), r + " tensor has no quantization parameters");
  // Hostile quantization parameters give a clear error instead of a result that differs
  // from TFLite's: only weights may be per-channel; scales must be finite (and positive for
  // values, which are divided by), zero points int8.
  const bool weights = r == "filter";
  require(weights || (t.scales.size() == 1 && t.zero_points.size() <= 1),
          r + " tensor must be quantized per tensor (one scale and zero point)");
  for (float s : t.scales)
    require(std::isfinite(s) && (s > 0 || (weights && s == 0)),
            r + " tensor has quantization scale " + std::to_string(s) + " (must be finite and positive)");
  for (int32_t z : t.zero_points)
    require(z >= -128 && z <= 127, r + " tensor has zero point " + std::to_string(z) + " (outside the int8 range)");
}

bool is_q8(DType t) { return t == DType::kInt8 || t == DType::kUInt8; }
int32_t qmin(const TensorInfo& t) { return t.type == DType::kUInt8 ? 0 : -128; }
int32_t qmax(const TensorInfo& t) { return t.type == DType::kUInt8 ? 255 : 127; }

void require_q8(const TensorInfo& t, const char* role) {
  if (t.type != DType::kUInt8) return require_int8(t, role);
  const std::string r(role);
  require(!t.scales.empty(), r + " tensor has no quantization parameters");
  require(t.scales.size() == 1 && t.zero_points.size() <= 1, r + " tensor must be quantized per tensor (uint8)");
  for (float s : t.scales)
    require(std::isfinite(s) && (s > 0 || (r == "filter" && s == 0)),
            r + " tensor has quantization scale " + std::to_string(s) + " (must be finite and positive)");
  for (int32_t z : t.zero_points)
    require(z >= 0 && z <= 255, r + " tensor has zero point " + std::to_string(z) + " (outside the uint8 range)");
}

void quantize_multiplier(double m, int32_t* q, int* shift) {
  if (m == 0.0) {
    *q = 0;
    *shift = 0;
    return;
  }
  const double frac = std::frexp(m, shift);
  int64_t q_fixed = static_cast<int64_t>(std::round(frac * (1LL << 31)));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++*shift;
  }
  if (*shift < -31) {
    *shift = 0;
    q_fixed = 0;
  }
  *q = static_cast<int32_t>(q_fixed);
}

void activation_range(Act act, float scale, int32_t zp, int32_t* lo, int32_t* hi) {
  auto quant = [&](float f) { return zp + static_cast<int32_t>(std::round(f / scale)); };
  const int32_t qmin = -128, qmax = 127;
  *lo = qmin;
  *hi = qmax;
  if (act == Act::kRelu) {
    *lo = std::max(qmin, quant(0.f));
  } else if (act == Act::kRelu6) {
    *lo = std::max(qmin, quant(0.f));
    *hi = std::min(qmax, quant(6.f));
  } else if (act == Act::kReluN1To1) {
    *lo = std::max(qmin, quant(-1.f));
    *hi = std::min(qmax, quant(1.f));
  } else if (act != Act::kNone) {
    throw ArgError("unsupported fused activation");
  }
}

void activation_range(Act act, const TensorInfo& out, int32_t* lo, int32_t* hi) {
  activation_range(act, out.scale(), out.zero_point(), lo, hi);
  // the same clamps against the type's own range (uint8: [0, 255])
  *lo = std::max(*lo, qmin(out));
  *hi = std::min(*hi, qmax(out));
  if (out.type == DType::kUInt8) {
    auto quant = [&](float f) { return out.zero_point() + static_cast<int32_t>(std::round(f / out.scale())); };
    *lo = std::max(0, act == Act::kRelu || act == Act::kRelu6 ? quant(0.f) : act == Act::kReluN1To1 ? quant(-1.f) : 0);
    *hi = std::min(255, act == Act::kRelu6 ? quant(6.f) : act == Act::kReluN1To1 ? quant(1.f) : 255);
  }
}

Share offset_weights(Env& env, int filter, int32_t filter_offset) {
  return env.p.add_public(env.get(filter), Pub(static_cast<uint64_t>(static_cast<int64_t>(filter_offset))));
}

Vec encode_constant(const TensorInfo& t) {
  const size_t n = t.size();
  Vec v(n);
  if (!t.data) throw ArgError("constant tensor " + std::to_string(t.index) + " has no data");
  switch (t.type) {
    case DType::kInt8:
      require(t.bytes >= n, "constant tensor is truncated");
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint64_t>(static_cast<int64_t>(reinterpret_cast<const int8_t*>(t.data)[i]));
      break;
    case DType::kUInt8:
      require(t.bytes >= n, "constant tensor is truncated");
      for (size_t i = 0; i < n; ++i) v[i] = t.data[i];
      break;
    case DType::kInt32:
      require(t.bytes >= 4 * n, "constant tensor is truncated");
      for (size_t i = 0; i < n; ++i) {
        int32_t x;
        std::memcpy(&x, t.data + 4 * i, 4);
        v[i] = static_cast<uint64_t>(static_cast<int64_t>(x));
      }
      break;
    default:
      throw ArgError(std::string("constant tensor of type ") + dtype_name(t.type) + " cannot be secret-shared");
  }
  return v;
}

mpc::RequantSpec requant_spec(bool exact, const std::vector<int32_t>& mult, const std::vector<int>& shift,
                              int32_t zp_out, int32_t lo, int32_t hi, bool single_rounding, const NarrowAcc* narrow) {
  // One fused primitive (mpc::Protocol::requant): clamp(MultiplyByQuantizedMultiplier(acc) + zp)
  // as clamp(R(acc * mult' + add), lo - zp, hi - zp) + zp, R a floor: exact modes reproduce
  // TFLite's rounding (with RoundingDivideByPOT's tie correction for its double rounding);
  // probabilistic mode rounds (acc + A) M 2^shift / 2^31 to nearest (ties up) in one step, as
  // mal3 always did, with the multiplier shortened to the accumulator's precision: for
  // |acc| < 2^(ab-1), M' = round(M 2^ls / 2^(d - d')) with d' = min(d, ab) moves the product by
  // at most |acc| 2^-(d'+1) <= 1/4 LSB, so the result stays within 1 LSB of TFLite's, while the
  // truncation reads d' + span + 1 bits instead of d + span + 1 (fewer carry planes, narrower
  // rings). Deterministic, and never costlier than exact (no tie correction). A stochastic
  // rounding with an offset no party knows would cost a second carry circuit for no gain in
  // fidelity.
  using i128 = __int128;
  require(!mult.empty() && (shift.size() == mult.size() || shift.size() == 1 || mult.size() == 1),
          "internal: multiplier and shift vectors differ in length");
  const size_t C = std::max(mult.size(), shift.size());
  const bool nar = narrow && narrow->on();
  if (nar)
    require(narrow->anchor.empty() || narrow->anchor.size() == C || narrow->anchor.size() == 1,
            "internal: narrow accumulator plan does not match the multipliers");
  auto anchor = [&](size_t c) -> i128 {  // acc = s + b' = (s + b) - A: v = (acc + A) * mult + add
    if (!nar || narrow->anchor.empty()) return 0;
    return narrow->anchor[narrow->anchor.size() == 1 ? 0 : c];
  };
  const int ab = nar ? narrow->acc_bits : 32;
  mpc::RequantSpec s;
  s.stochastic = false;
  s.mult.v.resize(C);
  s.add.v.resize(C);
  s.adj.v.resize(C);
  s.d.v.resize(C);
  for (size_t c = 0; c < C; ++c) {
    const uint64_t M = static_cast<uint64_t>(mult[mult.size() == 1 ? 0 : c]);
    const int sh = shift[shift.size() == 1 ? 0 : c];
    require(sh >= -31 && sh <= 30, "internal: requantization shift outside [-31, 30]");
    const int ls = sh > 0 ? sh : 0, rs = sh > 0 ? 0 : -sh;
    uint64_t mul, add;
    int d;
    if (!exact) {  // round((acc + A) * M 2^ls / 2^(31 + rs)), the multiplier cut to d' bits
      const int dfull = 31 + rs;
      d = std::min(dfull, std::max(ab, 1));
      const int cut = dfull - d;
      const i128 Mf = i128(M) << ls, half = cut > 0 ? i128(1) << (cut - 1) : 0;
      mul = static_cast<uint64_t>((Mf + half) >> cut);
      add = static_cast<uint64_t>(((anchor(c) * Mf + half) >> cut) + (i128(1) << (d - 1)));
      s.adj.v[c] = 0;
    } else if (single_rounding) {  // floor((x * M + 2^(t-1)) / 2^t), t = 31 - shift
      d = 31 - sh;
      mul = M;
      add = (uint64_t(1) << (d - 1)) + static_cast<uint64_t>(anchor(c) * i128(M));
      s.adj.v[c] = 0;
    } else {  // RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^ls, M), rs)
      mul = M << ls;
      d = 31 + rs;
      add = (uint64_t(1) << 30) + (rs > 0 ? uint64_t(1) << (30 + rs) : 0) + static_cast<uint64_t>(anchor(c) * i128(mul));
      s.adj.v[c] = rs > 0 ? uint64_t(1) << 31 : 0;
    }
    s.mult.v[c] = mul;
    s.add.v[c] = add;
    s.d.v[c] = d;
  }
  s.lo = Pub(static_cast<uint64_t>(static_cast<int64_t>(lo) - zp_out));
  s.hi = Pub(static_cast<uint64_t>(static_cast<int64_t>(hi) - zp_out));
  if (nar) s.acc_bits = narrow->acc_bits;
  return s;
}

Share requantize_output(Env& env, const Share& acc, const std::vector<int32_t>& mult, const std::vector<int>& shift,
                        int32_t zp_out, int32_t lo, int32_t hi, bool single_rounding, const NarrowAcc* narrow,
                        int out_bits) {
  mpc::RequantSpec s = requant_spec(env.exact, mult, shift, zp_out, lo, hi, single_rounding, narrow);
  s.out_bits = out_bits;
  Share y = env.p.requant(acc, s);
  return env.p.add_public(y, Pub(static_cast<uint64_t>(static_cast<int64_t>(zp_out))));
}

Share requantize_output(Env& env, const Share& acc, const OutputQuant& q) {
  return requantize_output(env, acc, q.mult, q.shift, q.zp_out, q.act_lo, q.act_hi, q.single_rounding);
}

Share requantize_output(Env& env, const Share& acc, const OutputQuant& q, const NarrowAcc& n, int out_bits) {
  return requantize_output(env, acc, q.mult, q.shift, q.zp_out, q.act_lo, q.act_hi, q.single_rounding, &n, out_bits);
}

NarrowAcc narrow_acc(const OutputQuant& q, int64_t terms, int64_t max_product) {
  using i128 = __int128;
  NarrowAcc n;
  if (q.mult.empty() || terms <= 0 || max_product <= 0) return n;
  const size_t C = std::max(q.mult.size(), q.shift.size());
  const i128 lo = i128(q.act_lo) - q.zp_out, hi = i128(q.act_hi) - q.zp_out;
  const i128 amax = i128(1) << 31, bound = i128(terms) * max_product;
  if (lo > hi || bound >= amax) return n;
  i128 dmax = 0;
  for (size_t c = 0; c < C; ++c) {
    const i128 M = q.mult[q.mult.size() == 1 ? 0 : c];
    const int sh = q.shift[q.shift.size() == 1 ? 0 : c];
    if (M <= 0 || sh < -31 || sh > 30) return NarrowAcc{};
    // Every mode's R(acc) lies in [f - 1, f + 1], f = floor(acc M 2^sh / 2^31) (nearest:
    // f or f + 1; one rounding: f or f + 1; two roundings: within a half of acc M 2^sh / 2^31
    // + 1/2): acc < A (f <= lo - 1) gives lo, acc >= A + D (f >= hi + 1) gives hi.
    const int e = 31 - sh;  // 1..62; |acc M| < 2^62
    auto f = [&](i128 a) { return (a * M) >> e; };
    auto least = [&](i128 L) {  // least acc in [-2^31, 2^31] with f(acc) >= L (2^31 if none)
      i128 l = -amax, h = amax;
      while (l < h) {
        const i128 mid = l + ((h - l) >> 1);
        if (f(mid) >= L) h = mid;
        else l = mid + 1;
      }
      return l;
    };
    const i128 A = least(lo), E = least(hi + 1);
    // The requantization's constant gains A * (M << max(sh, 0)); keep it far inside 64 bits.
    const i128 big = A < 0 ? -A : A;
    if (big * (M << std::max(sh, 0)) >= (i128(1) << 61)) return NarrowAcc{};
    n.anchor.push_back(static_cast<int64_t>(A));
    n.span.push_back(static_cast<int64_t>(E - A));
    dmax = std::max(dmax, E - A);
  }
  int bits = 1;
  while ((i128(1) << (bits - 1)) < dmax + 2 * bound + 2) ++bits;  // b' range: NarrowAcc::derived_bits
  if (bits > 30) return NarrowAcc{};
  n.acc_bits = bits;
  n.bound = static_cast<int64_t>(bound);
  return n;
}

NarrowAcc NarrowAcc::bounded(int64_t bound) {
  NarrowAcc n;
  int bits = 2;
  while (bits < 32 && (int64_t(1) << (bits - 1)) <= bound) ++bits;
  if (bound >= 0 && bits < 32) {
    n.acc_bits = bits;
    n.bound = bound;
  }
  return n;
}

Vec NarrowAcc::derive(const Vec& bias) const {
  Vec out(bias.size());
  for (size_t c = 0; c < bias.size(); ++c) {
    const size_t k = anchor.size() == 1 ? 0 : c % anchor.size();
    const int64_t b = static_cast<int64_t>(bias[c]) - anchor[k];  // |bias|, |anchor| <= 2^31
    out[c] = static_cast<uint64_t>(std::max<int64_t>(-(bound + 1), std::min<int64_t>(span[k] + bound, b)));
  }
  return out;
}

int layer_reads(const std::string& protocol, bool exact, bool debug, const OutputQuant& q, const NarrowAcc& n) {
  if (debug) return 64;  // debug_checks open the accumulator whole
  return mpc::requant_reads(protocol, requant_spec(exact, q.mult, q.shift, q.zp_out, q.act_lo, q.act_hi,
                                                   q.single_rounding, &n));
}

Share layer_product(Env& env, const Kernel& k, mpc::Product::Kind kind, const Share& x, const Share& w,
                    const mpc::ConvGeom& g, const OutputQuant& q) {
  mpc::Product pr{kind, &x, &w, g};
  pr.out_bits = layer_reads(env.p.name(), env.exact, env.p.debug_checks, q, k.narrow);
  return std::move(env.p.products({pr})[0]);
}

Share layer_accumulator(Env& env, const Kernel& k, const Share& s, int bias) {
  if (!k.narrow.on()) return bias >= 0 ? add_channel_bias(env.p, s, env.get(bias)) : s;
  if (bias >= 0) return add_channel_bias(env.p, s, env.get(k.narrow_slot()));
  // no bias tensor: b' = clamp(-A, ...) is public, per requantization channel
  const size_t C = k.narrow.anchor.size();
  const Vec b = k.narrow.derive(Vec(C, 0));
  return env.p.add_public(s, Pub(std::vector<uint64_t>(b.begin(), b.end())));
}

Share add_channel_bias(mpc::Protocol& p, const Share& acc, const Share& bias) {
  const size_t n = acc.size(), c = bias.size();
  require(c > 0 && n % c == 0, "internal: bias does not broadcast over the accumulators");
  return p.add(acc, p.linear(bias, acc.shape, [&](const mpc::u64* s, mpc::u64* d) {
    for (size_t i = 0; i < n; i += c) std::copy(s, s + c, d + i);
  }));
}

OutputQuant output_quant(const char* op, const TensorInfo& in, const TensorInfo& filter, const TensorInfo& out,
                         int64_t channels, Act act, bool per_tensor_float_product) {
  require(in.type == out.type, std::string(op) + ": input and output types differ (" + dtype_name(in.type) + ", " +
                                   dtype_name(out.type) + ")");
  require(filter.type == in.type, std::string(op) + ": " + dtype_name(in.type) + " input needs " +
                                      dtype_name(in.type) + " weights, got " + dtype_name(filter.type));
  const bool u8 = in.type == DType::kUInt8;
  if (!u8)
    for (auto z : filter.zero_points)
      require(z == 0, std::string(op) + ": int8 weights must be symmetric (zero point 0)");
  const size_t ns = filter.scales.size();
  require(ns == 1 || static_cast<int64_t>(ns) == channels,
          std::string(op) + ": weights need one scale or one per output channel");
  OutputQuant q;
  q.mult.resize(channels);
  q.shift.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double eff =
        ns == 1 && (per_tensor_float_product || u8)
            ? static_cast<double>(in.scale() * filter.scales[0]) / static_cast<double>(out.scale())
            : static_cast<double>(in.scale()) * static_cast<double>(filter.scales[ns == 1 ? 0 : c]) /
                  static_cast<double>(out.scale());
    quantize_multiplier(eff, &q.mult[c], &q.shift[c]);
    // TFLite shifts an int32 accumulator left by a positive shift (it wraps, the ring does not)
    require(q.shift[c] <= 0, std::string(op) + ": effective output scale " + std::to_string(eff) +
                                 " (input scale x weight scale / output scale) must be below 1");
  }
  q.input_offset = -in.zero_point();
  q.filter_offset = u8 ? -filter.zero_point() : 0;
  q.zp_out = out.zero_point();
  activation_range(act, out, &q.act_lo, &q.act_hi);
  return q;
}

int secret_weights(Kernel& k, const char* op, const TensorInfo& filter, const TensorInfo* bias, int64_t channels) {
  require(filter.constant, std::string(op) + ": weights must be a constant tensor");
  k.secret_constants = {filter.index};
  if (filter.type == DType::kUInt8) k.acc_max_product = 255 * 255;
  if (!bias) return -1;
  require(bias->type == DType::kInt32 && bias->constant, std::string(op) + ": bias must be a constant int32 tensor");
  require(static_cast<int64_t>(bias->size()) == channels, std::string(op) + ": bias size must equal output channels");
  k.secret_constants.push_back(bias->index);
  k.acc_bias = bias->index;
  k.acc_terms = channels > 0 ? static_cast<int64_t>(filter.size()) / channels : 0;
  return bias->index;
}

void Kernel::check_owner_constant(int index, const Vec& values) const {
  if (index != acc_bias) return;
  // |sum of acc_terms products (input + offset) * (weight + offset)| <= acc_terms * 255 * 128
  // (int8: symmetric weights), acc_terms * 255 * 255 (uint8)
  const int64_t bound = bias_bound();
  for (size_t c = 0; c < values.size(); ++c) {
    const int64_t b = static_cast<int64_t>(values[c]);
    require(b <= bound && -b <= bound + 1,
            std::string(name()) + ": bias " + std::to_string(b) + " of output channel " + std::to_string(c) +
                " could overflow TFLite's int32 accumulator (" + std::to_string(acc_terms) +
                " products per output); the model owner refuses to share it");
  }
}

}  // namespace tflite_mpc
