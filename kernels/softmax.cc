// SOFTMAX (int8): pending.
#include "kernels/kernel.h"

namespace tflite_mpc {
std::unique_ptr<Kernel> make_softmax(float, const TensorInfo&, const TensorInfo&) {
  throw ArgError("SOFTMAX is not implemented yet");
}
}  // namespace tflite_mpc
