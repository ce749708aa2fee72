// RESHAPE and SQUEEZE: the same values under a new (public) shape.
#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class Reshape : public Kernel {
 public:
  Shape shape;
  const char* name() const override { return "RESHAPE"; }
  void eval(Env& env) const override {
    Share y = env.get(in());
    y.shape = shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_reshape(const TensorInfo& in, const TensorInfo& out) {
  require(in.type == out.type, "RESHAPE: input and output types differ");
  require(in.size() == out.size(), "RESHAPE: element counts differ");
  require(in.scale() == out.scale() && in.zero_point() == out.zero_point(),
          "RESHAPE: input and output quantization must match");
  auto k = std::make_unique<Reshape>();
  k->shape = out.shape;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
