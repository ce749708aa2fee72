// REDUCE_MAX / REDUCE_MIN (int8 / uint8, any axes, keep_dims or not), mirroring TF 2.21's
// reduce.cc EvalGeneric<kReference, kMax / kMin>: the raw 8-bit values are compared (TFLite
// requires the input and output quantization to be equal). Evaluated as a tree: each level
// takes the max of the first and second half of every group (an odd element waits for the
// next level), so ceil(log2 n) comparison levels for n elements per output, all outputs
// in the same rounds.
#include <algorithm>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class ReduceMaxMin : public Kernel {
 public:
  bool max = true;
  Shape out_shape;
  std::vector<int64_t> order;  // gathered input indices: output-major, `count` per output
  int64_t count = 1;
  const char* name() const override { return max ? "REDUCE_MAX" : "REDUCE_MIN"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t nout = static_cast<int64_t>(mpc::shape_size(out_shape));
    Share cur = p.linear(env.get(in()), {nout * count}, [&](const mpc::u64* x, mpc::u64* y) {
      for (size_t i = 0; i < order.size(); ++i) y[i] = x[order[i]];
    });
    int64_t c = count;
    while (c > 1) {
      const int64_t h = c / 2;
      auto half = [&](int64_t off) {
        return p.linear(cur, {nout * h}, [=](const mpc::u64* x, mpc::u64* y) {
          for (int64_t o = 0; o < nout; ++o)
            for (int64_t j = 0; j < h; ++j) y[o * h + j] = x[o * c + off + j];
        });
      };
      Share x = half(0), y = half(h);
      Share m = mpc::max(p, x, y, 10);  // 8-bit values: x - y fits 9 signed bits
      if (!max) m = p.sub(p.add(x, y), m);
      const int64_t next = h + (c % 2);
      if (c % 2) {  // carry the odd last element of every group to the next level
        Share both = mpc::concat({&m, &cur});
        const int64_t mc = nout * h;
        m = p.linear(both, {nout * next}, [=](const mpc::u64* x, mpc::u64* y) {
          for (int64_t o = 0; o < nout; ++o) {
            for (int64_t j = 0; j < h; ++j) y[o * next + j] = x[o * h + j];
            y[o * next + h] = x[mc + o * c + c - 1];
          }
        });
      }
      cur = std::move(m);
      c = next;
    }
    cur.shape = out_shape;
    env.set(out(), std::move(cur));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_reduce_max_min(bool max, const std::vector<int>& axes, const TensorInfo& in,
                                            const TensorInfo& out) {
  const char* op = max ? "REDUCE_MAX" : "REDUCE_MIN";
  const std::string o(op);
  require_q8(in, (o + ": input").c_str());
  require_q8(out, (o + ": output").c_str());
  require(in.type == out.type, o + ": input and output must have the same type");
  require(in.scale() == out.scale() && in.zero_point() == out.zero_point(),
          o + ": input and output quantization must be equal (TFLite's reference kernel requires it)");
  auto k = std::make_unique<ReduceMaxMin>();
  k->max = max;
  k->out_shape = out.shape;
  const std::vector<int64_t> out_of = reduction_map(op, axes, in, out, &k->count);
  // group the input elements by output, in input order
  const size_t nout = out.size();
  std::vector<int64_t> fill(nout, 0);
  k->order.resize(out_of.size());
  for (size_t i = 0; i < out_of.size(); ++i) k->order[out_of[i] * k->count + fill[out_of[i]]++] = static_cast<int64_t>(i);
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
