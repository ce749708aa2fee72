// MEAN (int8 / uint8, any axes, keep_dims or not), mirroring the BUILTIN_REF path of TF 2.21
// (reduce.cc EvalMean<kReference> -> reference_ops::QuantizedMeanOrSum):
//   sum   = sum of the raw 8-bit inputs over the reduced axes, n = their count
//   (M, s) = QuantizeMultiplier(in_scale / out_scale)
//   shift = min(floor(log2 n), 32, 31 + s); M' = (M << shift) / n; s' = s - shift
//   out   = clamp(MultiplyByQuantizedMultiplier(sum - zp_in * n, M', s') + zp_out)
// uint8: the same arithmetic, clamped to [0, 255]. (Older TFLite sources send uint8 means over
// axes [1, 2] of a 4-D keep_dims input to the legacy reference_ops::Mean, with a float bias;
// TF 2.21's BUILTIN_REF does not: measured, the legacy formula is 1 LSB off on a random input.)
// SUM with rescaling (input and output quantization differ). TF 2.21's BUILTIN_REF SUM does
// not compute a sum (its int8 output is garbage, mostly -1, whatever the input: see
// tests/test_ops_arith.py), so SUM mirrors the kernel TFLite runs by default (EvalSum
// <kGenericOptimized> -> optimized_ops::QuantizedMeanOrSum, compute_sum), in float32:
//   out = clamp(round(float(sum) * (s_in / s_out) + (-zp_in * (s_in / s_out)) * n) + zp_out)
// That is a monotone public function of the integer sum, so it is exactly
//   out = f(n q_max) - #{v : sum < t_v}
// over the public thresholds t_v where f steps (at most 255): one comparison round for all.
#include <algorithm>
#include <cmath>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class Mean : public Kernel {
 public:
  bool sum = false;
  std::vector<mpc::u64> neg_thresholds;  // SUM: -t_v for every output step v
  int64_t top = 0;                        // SUM: f(n q_max)
  int cmp_bits = 2;
  Shape in_shape, out_shape;
  std::vector<int64_t> out_of;  // input element -> output element
  int64_t count = 1;
  int32_t zp_in = 0, zp_out = 0, mult = 0, lo = -128, hi = 127;
  int shift = 0;
  const char* name() const override { return sum ? "SUM" : "MEAN"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const size_t nout = mpc::shape_size(out_shape);
    Share total = p.linear(env.get(in()), out_shape, [&](const mpc::u64* x, mpc::u64* y) {
      std::fill(y, y + nout, 0);
      for (size_t i = 0; i < out_of.size(); ++i) y[out_of[i]] += x[i];
    });
    Share y;
    if (sum) {
      const size_t t = neg_thresholds.size();
      if (t == 0) {
        y = p.add_public(p.mul_public(total, Pub(0)), Pub(static_cast<uint64_t>(top)));
      } else {
        // [sum < t_v] for every output and step, in one comparison
        Share d = p.linear(total, {static_cast<int64_t>(nout * t)}, [&](const mpc::u64* x, mpc::u64* z) {
          for (size_t o = 0; o < nout; ++o) std::fill(z + o * t, z + (o + 1) * t, x[o]);
        });
        Share below = p.msb(p.add_public(d, Pub(neg_thresholds)), cmp_bits);
        Share count_below = p.linear(below, out_shape, [&](const mpc::u64* x, mpc::u64* z) {
          for (size_t o = 0; o < nout; ++o) {
            mpc::u64 c = 0;
            for (size_t v = 0; v < t; ++v) c += x[o * t + v];
            z[o] = c;
          }
        });
        y = p.add_public(p.neg(count_below), Pub(static_cast<uint64_t>(top)));
      }
    } else {
      total = p.add_public(total, Pub(static_cast<uint64_t>(-static_cast<int64_t>(zp_in) * count)));
      const NarrowAcc bound = NarrowAcc::bounded(255 * count);  // |x - zp_in| <= 255 per term
      y = requantize_output(env, total, {mult}, {shift}, zp_out, lo, hi, false, &bound);
    }
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

std::unique_ptr<Kernel> make_mean_or_sum(bool sum, const std::vector<int>& axes, const TensorInfo& in,
                                         const TensorInfo& out) {
  const std::string op = sum ? "SUM" : "MEAN";
  require_q8(in, (op + ": input").c_str());
  require_q8(out, (op + ": output").c_str());
  {
  }
  require(in.type == out.type, op + ": input and output must have the same type");
  auto k = std::make_unique<Mean>();
  k->sum = sum;
  k->in_shape = in.shape;
  k->out_shape = out.shape;
  k->out_of = reduction_map(op.c_str(), axes, in, out, &k->count);
  int32_t m;
  int s;
  quantize_multiplier(static_cast<double>(in.scale()) / static_cast<double>(out.scale()), &m, &s);
  if (sum) {
    // TF 2.21 sums 8-bit values in their own type (wrapping) when the quantization is unchanged
    require(in.scale() != out.scale() || in.zero_point() != out.zero_point(),
            "SUM: input and output with the same quantization (TFLite then adds in 8 bits with "
            "wrap-around) is not supported");
    require(k->count <= (int64_t(1) << 20), "SUM: more than 2^20 elements per output are not supported");
    const float scale = in.scale() / out.scale();
    const float bias = static_cast<float>(-in.zero_point() * scale) * static_cast<float>(k->count);
    const int64_t qlo = qmin(out), qhi = qmax(out), zo = out.zero_point();
    auto f = [&](int64_t v) {
      volatile float prod = static_cast<float>(v) * scale;  // no fused multiply-add, as TFLite's build
      const float r = std::round(prod + bias);
      return std::min(qhi, std::max(qlo, static_cast<int64_t>(static_cast<int32_t>(r)) + zo));
    };
    const int64_t smin = k->count * qmin(in), smax = k->count * qmax(in);
    k->top = f(smax);
    for (int64_t v = f(smin) + 1; v <= k->top; ++v) {  // smallest sum with f(sum) >= v
      int64_t a = smin, b = smax;
      while (a < b) {
        const int64_t mid = a + (b - a) / 2;
        if (f(mid) >= v) b = mid;
        else a = mid + 1;
      }
      k->neg_thresholds.push_back(static_cast<mpc::u64>(-a));
    }
    // sum - t in [-(smax - smin), smax - smin], plus a sign bit
    k->cmp_bits = 2 + (64 - __builtin_clzll(static_cast<unsigned long long>(smax - smin + 1)));
  } else {
    const int lg = 63 - __builtin_clzll(static_cast<unsigned long long>(k->count));
    const int sh = std::min({lg, 32, 31 + s});
    k->mult = static_cast<int32_t>((static_cast<int64_t>(m) << sh) / k->count);
    k->shift = s - sh;
  }
  k->zp_in = in.zero_point();
  k->zp_out = out.zero_point();
  k->lo = qmin(out);
  k->hi = qmax(out);
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace

std::vector<int64_t> reduction_map(const char* op, const std::vector<int>& axes, const TensorInfo& in,
                                   const TensorInfo& out, int64_t* count) {
  const std::string o(op);
  const int rank = static_cast<int>(in.shape.size());
  std::vector<bool> reduced(rank, false);
  for (int a : axes) {
    const int ax = a < 0 ? a + rank : a;
    require(ax >= 0 && ax < rank, o + ": axis " + std::to_string(a) + " out of range");
    reduced[ax] = true;
  }
  Shape kept;
  *count = 1;
  for (int d = 0; d < rank; ++d) {
    if (reduced[d]) *count *= in.shape[d];
    else kept.push_back(in.shape[d]);
  }
  require(mpc::shape_size(kept) == out.size(), o + ": output size does not match the reduced input");
  require(*count > 0, o + ": empty reduction");
  // input flat index -> output flat index (row-major over the kept axes)
  const size_t n = in.size();
  std::vector<int64_t> out_of(n);
  std::vector<int64_t> idx(rank, 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t v = 0;
    for (int d = 0; d < rank; ++d)
      if (!reduced[d]) v = v * in.shape[d] + idx[d];
    out_of[i] = v;
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out_of;
}

std::unique_ptr<Kernel> make_mean(const std::vector<int>& axes, const TensorInfo& in, const TensorInfo& out) {
  return make_mean_or_sum(false, axes, in, out);
}

std::unique_ptr<Kernel> make_sum(const std::vector<int>& axes, const TensorInfo& in, const TensorInfo& out) {
  return make_mean_or_sum(true, axes, in, out);
}

}  // namespace tflite_mpc
