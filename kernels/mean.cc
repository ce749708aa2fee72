// MEAN (int8, any axes, keep_dims or not), mirroring the BUILTIN_REF path of
// TF 2.21 (reduce.cc EvalMean<kReference> -> reference_ops::QuantizedMeanOrSum):
//   sum   = sum of the raw int8 inputs over the reduced axes, n = their count
//   (M, s) = QuantizeMultiplier(in_scale / out_scale)
//   shift = min(floor(log2 n), 32, 31 + s); M' = (M << shift) / n; s' = s - shift
//   out   = clamp(MultiplyByQuantizedMultiplier(sum - zp_in * n, M', s') + zp_out)
// uint8: the same arithmetic, clamped to [0, 255]. (Older TFLite sources send uint8 means over
// axes [1, 2] of a 4-D keep_dims input to the legacy reference_ops::Mean, with a float bias;
// TF 2.21's BUILTIN_REF does not: measured, the legacy formula is 1 LSB off on a random input.)
#include <algorithm>
#include <cmath>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class Mean : public Kernel {
 public:
  Shape in_shape, out_shape;
  std::vector<int64_t> out_of;  // input element -> output element
  int64_t count = 1;
  int32_t zp_in = 0, zp_out = 0, mult = 0, lo = -128, hi = 127;
  int shift = 0;
  const char* name() const override { return "MEAN"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const size_t nout = mpc::shape_size(out_shape);
    Share sum = p.linear(env.get(in()), out_shape, [&](const mpc::u64* x, mpc::u64* y) {
      std::fill(y, y + nout, 0);
      for (size_t i = 0; i < out_of.size(); ++i) y[out_of[i]] += x[i];
    });
    sum = p.add_public(sum, Pub(static_cast<uint64_t>(-static_cast<int64_t>(zp_in) * count)));
    Share y = requantize_output(env, sum, {mult}, {shift}, zp_out, lo, hi);
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_mean(const std::vector<int>& axes_in, const TensorInfo& in, const TensorInfo& out) {
  require_q8(in, "input");
  require_q8(out, "output");
  require(in.type == out.type, "MEAN: input and output types differ");
  const int rank = static_cast<int>(in.shape.size());
  std::vector<bool> reduced(rank, false);
  for (int a : axes_in) {
    const int ax = a < 0 ? a + rank : a;
    require(ax >= 0 && ax < rank, "MEAN: axis " + std::to_string(a) + " out of range");
    reduced[ax] = true;
  }
  auto k = std::make_unique<Mean>();
  k->in_shape = in.shape;
  k->out_shape = out.shape;
  Shape kept;
  for (int d = 0; d < rank; ++d) {
    if (reduced[d]) k->count *= in.shape[d];
    else kept.push_back(in.shape[d]);
  }
  require(mpc::shape_size(kept) == out.size(), "MEAN: output size does not match the reduced input");
  require(k->count > 0, "MEAN: empty reduction");
  // input flat index -> output flat index (row-major over the kept axes)
  const size_t n = in.size();
  k->out_of.resize(n);
  std::vector<int64_t> idx(rank, 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (int d = 0; d < rank; ++d)
      if (!reduced[d]) o = o * in.shape[d] + idx[d];
    k->out_of[i] = o;
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  k->lo = qmin(out);
  k->hi = qmax(out);
  int32_t m;
  int s;
  quantize_multiplier(static_cast<double>(in.scale()) / static_cast<double>(out.scale()), &m, &s);
  const int lg = 63 - __builtin_clzll(static_cast<unsigned long long>(k->count));
  const int sh = std::min({lg, 32, 31 + s});
  k->mult = static_cast<int32_t>((static_cast<int64_t>(m) << sh) / k->count);
  k->shift = s - sh;
  k->zp_in = in.zero_point();
  k->zp_out = out.zero_point();
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
