// RESIZE_BILINEAR (int8), mirroring TFLite's integer reference kernel
// (reference_ops::ResizeBilinearInteger, TF 2.21):
//   scale_10 = round(2^10 * in / out)  (align_corners: (in - 1) / (out - 1))
//   v = y * scale_10 [+ scale_10 / 2 - 2^9 with half_pixel_centers]
//   y0 = max(v / 2^10, 0), y1 = min(ceil(v / 2^10), in - 1)   (C division)
//   out_20 = sum of the 4 taps x weights (10 + 10 fractional bits)
//   out = (out_20 +- 2^19) / 2^20  (rounding half away from zero)
// On shares the 4-tap sum is a public linear map; the division is
// RoundingDivideByPOT (exact mode) or, in probabilistic mode, a rounding to nearest with
// ties up, floor((out_20 + 2^19) / 2^20) (within 1; out_20 / 2^20 is a convex combination
// of int8 values, so the result stays in range without a clamp).
#include <algorithm>
#include <cstring>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

// One output coordinate: its two input taps and their 10-bit weights.
struct Tap {
  int64_t lo = 0, hi = 0, w_lo = 0, w_hi = 0;
};

std::vector<Tap> taps(int64_t in_size, int64_t out_size, bool align_corners, bool half_pixel) {
  int32_t scale_10 = static_cast<int32_t>(((1 << 10) * in_size + out_size / 2) / out_size);
  if (align_corners && out_size > 1)
    scale_10 = static_cast<int32_t>(((1 << 10) * (in_size - 1) + (out_size - 1) / 2) / (out_size - 1));
  std::vector<Tap> t(out_size);
  for (int64_t i = 0; i < out_size; ++i) {
    const int32_t v = half_pixel ? static_cast<int32_t>(i) * scale_10 + scale_10 / 2 - (1 << 9)
                                 : static_cast<int32_t>(i) * scale_10;
    const int32_t lo = std::max(v / (1 << 10), 0);
    const int32_t hi = std::min<int32_t>((v + (1 << 10) - 1) / (1 << 10), static_cast<int32_t>(in_size - 1));
    require(lo < in_size, "RESIZE_BILINEAR: interpolation position outside the input (output size too large)");
    t[i].lo = lo;
    t[i].hi = hi;
    t[i].w_hi = v - (1 << 10) * lo;
    t[i].w_lo = (1 << 10) - t[i].w_hi;
  }
  return t;
}

class ResizeBilinear : public Kernel {
 public:
  Shape in_shape, out_shape;
  std::vector<Tap> ty, tx;
  const char* name() const override { return "RESIZE_BILINEAR"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t N = in_shape[0], H = in_shape[1], W = in_shape[2], C = in_shape[3];
    const int64_t OH = out_shape[1], OW = out_shape[2];
    // out_20 = sum_taps x * w_y * w_x: a public linear map of the input
    Share s = p.linear(env.get(in()), out_shape, [&](const mpc::u64* x, mpc::u64* y) {
      for (int64_t b = 0; b < N; ++b)
        for (int64_t oy = 0; oy < OH; ++oy) {
          const Tap& a = ty[oy];
          for (int64_t ox = 0; ox < OW; ++ox) {
            const Tap& e = tx[ox];
            const int64_t rows[2] = {a.lo, a.hi}, cols[2] = {e.lo, e.hi};
            const mpc::u64 wy[2] = {mpc::u64(a.w_lo), mpc::u64(a.w_hi)}, wx[2] = {mpc::u64(e.w_lo), mpc::u64(e.w_hi)};
            mpc::u64* dst = y + ((b * OH + oy) * OW + ox) * C;
            std::fill(dst, dst + C, 0);
            for (int r = 0; r < 2; ++r)
              for (int q = 0; q < 2; ++q) {
                const mpc::u64 w = wy[r] * wx[q];
                const mpc::u64* src = x + ((b * H + rows[r]) * W + cols[q]) * C;
                for (int64_t c = 0; c < C; ++c) dst[c] += w * src[c];
              }
          }
        }
    });
    // |out_20| <= 2^7 * 2^20 (the weights of one output sum to 2^20)
    // probabilistic mode: floor((out_20 + 2^19) / 2^20), ties up (within 1; in [-128, 127])
    Share o = env.exact ? mpc::round_div_pot(p, s, Shifts(20), 32)
                        : p.trunc(p.add_public(s, Pub(uint64_t(1) << 19)), Shifts(20));
    o.shape = out_shape;
    env.set(out(), std::move(o));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_resize_bilinear(bool align_corners, bool half_pixel_centers, const TensorInfo& in,
                                             const TensorInfo* size, const TensorInfo& out) {
  // TFLite's reference kernel interpolates uint8 in float (reference_ops::ResizeBilinear<T>),
  // int8 in fixed point: only the latter is mirrored here.
  require(in.type != DType::kUInt8, "RESIZE_BILINEAR: uint8 is not supported (TFLite interpolates uint8 in "
                                    "float; only the int8 fixed-point kernel is mirrored)");
  require_int8(in, "input");
  require_int8(out, "output");
  require(!(align_corners && half_pixel_centers),
          "RESIZE_BILINEAR: align_corners and half_pixel_centers cannot both be set");
  require(in.shape.size() == 4 && out.shape.size() == 4, "RESIZE_BILINEAR: tensors must be 4-D");
  require(out.shape[0] == in.shape[0] && out.shape[3] == in.shape[3],
          "RESIZE_BILINEAR: output batch and channels must equal the input's");
  require(in.shape[1] > 0 && in.shape[2] > 0 && out.shape[1] > 0 && out.shape[2] > 0,
          "RESIZE_BILINEAR: empty input or output");
  require(in.shape[1] < (1 << 20) && in.shape[2] < (1 << 20) && out.shape[1] < (1 << 20) && out.shape[2] < (1 << 20),
          "RESIZE_BILINEAR: sizes beyond 2^20 are not supported");
  if (size && size->constant && size->data) {
    require(size->type == DType::kInt32 && size->size() == 2 && size->bytes >= 8,
            "RESIZE_BILINEAR: size must be an int32 tensor of 2 values");
    int32_t hw[2];
    std::memcpy(hw, size->data, 8);
    require(hw[0] == out.shape[1] && hw[1] == out.shape[2],
            "RESIZE_BILINEAR: the size input does not match the output shape");
  }
  auto k = std::make_unique<ResizeBilinear>();
  k->in_shape = in.shape;
  k->out_shape = out.shape;
  k->ty = taps(in.shape[1], out.shape[1], align_corners, half_pixel_centers);
  k->tx = taps(in.shape[2], out.shape[2], align_corners, half_pixel_centers);
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
