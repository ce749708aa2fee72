// QUANTIZE (float -> int8 / uint8) on the input edge, run by the data owner before
// sharing, and DEQUANTIZE (int8 / uint8 -> float) on the output edge, run by the
// recipient after reveal; both as TFLite's reference kernels compute them.
#include <cmath>

#include "kernels/kernel.h"

namespace tflite_mpc {

void quantize_input(const TensorInfo& in, const TensorInfo& out, const float* x, int64_t* q, size_t n) {
  require(in.type == DType::kFloat32, "QUANTIZE: input must be float32 at the input edge");
  require(is_q8(out.type) && out.scales.size() == 1, "QUANTIZE: output must be per-tensor int8 or uint8");
  const int32_t lo = qmin(out), hi = qmax(out);
  const float scale = out.scale();
  const int32_t zp = out.zero_point();
  for (size_t i = 0; i < n; ++i) {
    const int32_t v = static_cast<int32_t>(std::round(x[i] / scale)) + zp;
    q[i] = std::min(hi, std::max(lo, v));
  }
}

void dequantize_output(const TensorInfo& in, const int64_t* q, float* y, size_t n) {
  require(is_q8(in.type) && in.scales.size() == 1, "DEQUANTIZE: input must be per-tensor int8 or uint8");
  const double scale = in.scale();
  const int32_t zp = in.zero_point();
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(scale * static_cast<double>(q[i] - zp));
}

}  // namespace tflite_mpc
