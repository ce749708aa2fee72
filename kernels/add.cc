// ADD (int8), mirroring reference_integer_ops::AddElementwise:
//   v_i = MultiplyByQuantizedMultiplierSmallerThanOneExp((x_i - zp_i) << 20, m_i, s_i)
//   out = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(v_1 + v_2, m_o, s_o) + zp_out)
// with m_i = s_i / (2 max(s_1, s_2)) and m_o = 2 max(s_1, s_2) / (2^20 s_out).
// uint8 (reference_ops::Add on uint8): the same arithmetic, clamped to the uint8 activation range.
#include <algorithm>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class Add : public Kernel {
 public:
  int a = -1, b = -1;
  int32_t zp_a = 0, zp_b = 0, zp_out = 0, lo = -128, hi = 127;
  int32_t m_a = 0, m_b = 0, m_out = 0;
  int s_a = 0, s_b = 0, s_out = 0;
  static constexpr int kLeftShift = 20;
  const char* name() const override { return "ADD"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const Share &x = env.get(a), &y = env.get(b);
    const size_t n = x.size();
    Share xs = p.mul_public(p.add_public(x, Pub(uint64_t(int64_t(-zp_a)))), Pub(uint64_t(1) << kLeftShift));
    Share ys = p.mul_public(p.add_public(y, Pub(uint64_t(int64_t(-zp_b)))), Pub(uint64_t(1) << kLeftShift));
    // Both inputs are rescaled in the same rounds.
    Share both = mpc::concat({&xs, &ys});
    Pub m = mpc::expand_pub({{n, Pub(uint64_t(m_a))}, {n, Pub(uint64_t(m_b))}});
    Shifts s = mpc::expand_shifts({{n, Shifts(s_a)}, {n, Shifts(s_b)}});
    Share r = env.exact ? mpc::requantize_exact(p, both, m, s) : mpc::requantize_pr(p, both, m, s);
    auto parts = mpc::split(r, {x.shape, x.shape});
    Share sum = p.add(parts[0], parts[1]);
    Share o = requantize_output(env, sum, {m_out}, {s_out}, zp_out, lo, hi);
    o.shape = x.shape;
    env.set(out(), std::move(o));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_add(Act act, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out) {
  require_q8(a, "input 1");
  require_q8(b, "input 2");
  require_q8(out, "output");
  require(a.type == out.type && b.type == out.type, "ADD: inputs and output must have the same type");
  require(a.shape == b.shape && a.shape == out.shape,
          "ADD: broadcasting is not supported (shapes " + mpc::shape_str(a.shape) + " and " +
              mpc::shape_str(b.shape) + ")");
  auto k = std::make_unique<Add>();
  const double twice_max = 2 * std::max(a.scale(), b.scale());
  quantize_multiplier(a.scale() / twice_max, &k->m_a, &k->s_a);
  quantize_multiplier(b.scale() / twice_max, &k->m_b, &k->s_b);
  quantize_multiplier(twice_max / ((1 << Add::kLeftShift) * out.scale()), &k->m_out, &k->s_out);
  require(k->s_a <= 0 && k->s_b <= 0 && k->s_out <= 0, "ADD: rescaling multipliers must be smaller than one");
  k->zp_a = a.zero_point();
  k->zp_b = b.zero_point();
  k->zp_out = out.zero_point();
  activation_range(act, out, &k->lo, &k->hi);
  k->a = a.index;
  k->b = b.index;
  k->inputs = {a.index, b.index};
  k->outputs = {out.index};
  // A constant operand (e.g. a folded bias) is the model owner's secret.
  if (a.constant) k->secret_constants.push_back(a.index);
  if (b.constant) k->secret_constants.push_back(b.index);
  return k;
}

}  // namespace tflite_mpc
