// TRANSPOSE_CONV (int8, per-channel or per-tensor weights, optional int32 bias),
// mirroring reference_integer_ops::TransposeConv:
//   scratch[b, iy*s - pad + fy, ix*s - pad + fx, oc] += (x[b, iy, ix, ic] + input_offset) * w[oc, fy, fx, ic]
//   acc = scratch [+ bias[oc]]
//   out = clamp(MultiplyByQuantizedMultiplier(acc, m[oc], s[oc]) + zp_out, act_min, act_max)
// with the padding TFLite's Prepare computes from the OUTPUT size (ComputePaddingHeightWidth
// with in_size = output size). On shares: one matmul (input pixels x laid-out weights, one
// round) and a public col2im scatter-add, then the conv requantization tail.
#include <cstring>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class TransposeConv : public Kernel {
 public:
  int filter = -1, bias = -1;
  int64_t N = 1, H = 0, W = 0, C = 0, KH = 1, KW = 1, OC = 0, OH = 0, OW = 0, sh = 1, sw = 1, pad_t = 0, pad_l = 0;
  OutputQuant q;
  Shape out_shape;

  const char* name() const override { return "TRANSPOSE_CONV"; }

  void prepare(Env& env) override {
    // [OC, KH, KW, C] -> [C, KH * KW * OC] in this kernel's own slot (the weight tensor
    // may be shared with another node).
    const int64_t cols = KH * KW * OC;
    env.set(slot, env.p.linear(env.get(filter), {C, cols}, [&](const mpc::u64* src, mpc::u64* dst) {
      for (int64_t o = 0; o < OC; ++o)
        for (int64_t t = 0; t < KH * KW; ++t)
          for (int64_t c = 0; c < C; ++c) dst[c * cols + t * OC + o] = src[(o * KH * KW + t) * C + c];
    }));
  }

  void eval(Env& env) const override {
    auto& p = env.p;
    Share x = p.add_public(env.get(in()), Pub(static_cast<uint64_t>(static_cast<int64_t>(q.input_offset))));
    x.shape = {N * H * W, C};
    Share cols = p.matmul(x, env.get(slot));  // [N*H*W, KH*KW*OC]
    x = Share();
    const int64_t ncol = KH * KW * OC;
    const Share* b = bias >= 0 ? &env.get(bias) : nullptr;
    // col2im scatter-add (and the bias, a public-linear broadcast of its own share)
    Share acc = p.linear(cols, out_shape, [&](const mpc::u64* src, mpc::u64* dst) {
      std::fill(dst, dst + N * OH * OW * OC, 0);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t iy = 0; iy < H; ++iy)
          for (int64_t ix = 0; ix < W; ++ix) {
            const mpc::u64* row = src + ((n * H + iy) * W + ix) * ncol;
            for (int64_t fy = 0; fy < KH; ++fy) {
              const int64_t oy = iy * sh - pad_t + fy;
              if (oy < 0 || oy >= OH) continue;
              for (int64_t fx = 0; fx < KW; ++fx) {
                const int64_t ox = ix * sw - pad_l + fx;
                if (ox < 0 || ox >= OW) continue;
                mpc::u64* d = dst + ((n * OH + oy) * OW + ox) * OC;
                const mpc::u64* s = row + (fy * KW + fx) * OC;
                for (int64_t o = 0; o < OC; ++o) d[o] += s[o];
              }
            }
          }
    });
    cols = Share();
    if (b) acc = add_channel_bias(p, acc, *b);
    Share y = requantize_output(env, acc, q);
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_transpose_conv(const TransposeConvParams& p, const TensorInfo& output_shape,
                                            const TensorInfo& filter, const TensorInfo& in, const TensorInfo* bias,
                                            const TensorInfo& out) {
  const char* op = "TRANSPOSE_CONV";
  // TFLite's uint8 TRANSPOSE_CONV is a different kernel (reference_ops::TransposeConv with a
  // filter offset): not mirrored.
  require(in.type != DType::kUInt8, "TRANSPOSE_CONV: uint8 is not supported (only the int8 per-channel kernel "
                                    "is mirrored)");
  require_int8(in, "input");
  require_int8(filter, "filter");
  require_int8(out, "output");
  require(in.shape.size() == 4 && filter.shape.size() == 4 && out.shape.size() == 4,
          "TRANSPOSE_CONV: tensors must be 4-D");
  require(filter.shape[3] == in.shape[3], "TRANSPOSE_CONV: filter input channels do not match the input");
  require(out.shape[0] == in.shape[0] && out.shape[3] == filter.shape[0],
          "TRANSPOSE_CONV: output batch / channels do not match the input / filter");
  require(output_shape.type == DType::kInt32, "TRANSPOSE_CONV: output_shape must be an int32 tensor");
  if (output_shape.constant && output_shape.data) {
    require(output_shape.size() == 4 && output_shape.bytes >= 16, "TRANSPOSE_CONV: output_shape must have 4 values");
    int32_t s[4];
    std::memcpy(s, output_shape.data, 16);
    for (int i = 0; i < 4; ++i)
      require(s[i] == out.shape[i], "TRANSPOSE_CONV: the output_shape input does not match the output tensor");
  }
  require(p.stride_h >= 1 && p.stride_w >= 1, "TRANSPOSE_CONV: strides must be >= 1");
  if (!filter.scales.empty() && filter.scales.size() > 1)
    require(filter.qdim == 0, "TRANSPOSE_CONV: per-channel weights must be quantized along dimension 0");
  auto k = std::make_unique<TransposeConv>();
  k->N = in.shape[0]; k->H = in.shape[1]; k->W = in.shape[2]; k->C = in.shape[3];
  k->KH = filter.shape[1]; k->KW = filter.shape[2]; k->OC = filter.shape[0];
  k->OH = out.shape[1]; k->OW = out.shape[2];
  k->sh = p.stride_h; k->sw = p.stride_w;
  require(k->N > 0 && k->H > 0 && k->W > 0 && k->C > 0 && k->KH > 0 && k->KW > 0 && k->OC > 0 && k->OH > 0 &&
              k->OW > 0,
          "TRANSPOSE_CONV: empty tensor");
  // TFLite: ComputePaddingHeightWidth(stride, dilation 1, in_size = output size, filter)
  auto pad = [&](int64_t size, int64_t stride, int64_t kernel) {
    const int64_t o = p.same ? (size + stride - 1) / stride : (size + stride - kernel) / stride;
    return std::max<int64_t>(0, (o - 1) * stride + kernel - size) / 2;
  };
  k->pad_t = pad(k->OH, k->sh, k->KH);
  k->pad_l = pad(k->OW, k->sw, k->KW);
  k->q = output_quant(op, in, filter, out, k->OC, p.act, false);
  k->filter = filter.index;
  k->bias = secret_weights(*k, op, filter, bias, k->OC);
  k->prepare_only = {filter.index};
  k->out_shape = out.shape;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
