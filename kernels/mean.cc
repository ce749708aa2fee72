// MEAN over H, W (int8): pending the exact reference semantics.
#include "kernels/kernel.h"

namespace tflite_mpc {
std::unique_ptr<Kernel> make_mean(const std::vector<int>&, const TensorInfo&, const TensorInfo&) {
  throw ArgError("MEAN is not implemented yet");
}
}  // namespace tflite_mpc
