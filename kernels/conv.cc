// CONV_2D and DEPTHWISE_CONV_2D (int8, per-channel or per-tensor), mirroring
// reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel:
//   acc = sum filter * (input + input_offset) [+ bias]
//   out = clamp(MultiplyByQuantizedMultiplier(acc, m[c], s[c]) + zp_out, act_min, act_max)
// uint8 (per-tensor weights with a zero point), reference_ops::Conv / DepthwiseConv (uint8):
//   acc = sum (filter + filter_offset) * (input + input_offset) [+ bias], the same requantization
// (one multiplier from the float product in_scale * w_scale); filter + filter_offset is formed
// once in prepare(), locally (the offset is public).
#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class Conv : public Kernel {
 public:
  bool depthwise = false;
  mpc::ConvGeom g;
  int filter = -1, bias = -1;
  OutputQuant q;
  Shape out_shape;
  // Grouped CONV_2D with one input channel per group (ConvNeXt's 7x7 "depthwise" convs, which
  // TF 2.21 converts to CONV_2D with groups = channels): a depthwise convolution whose filter
  // [OC, KH, KW, 1] is transposed to [1, KH, KW, OC] once, locally, in prepare().
  bool grouped = false;

  const char* name() const override { return depthwise ? "DEPTHWISE_CONV_2D" : "CONV_2D"; }
  int input_bits(const std::string& protocol, bool exact, bool debug) const override {
    return layer_reads(protocol, exact, debug, q, narrow);
  }

  void prepare(Env& env) override {
    if (q.filter_offset != 0) env.set(slot, offset_weights(env, filter, q.filter_offset));
    if (grouped) {
      const Share& w = env.get(q.filter_offset != 0 ? slot : filter);
      const int64_t oc = g.c * g.depth_multiplier, taps = g.kh * g.kw;
      env.set(slot, env.p.linear(w, {1, g.kh, g.kw, oc}, [&](const mpc::u64* src, mpc::u64* dst) {
        for (int64_t o = 0; o < oc; ++o)
          for (int64_t t = 0; t < taps; ++t) dst[t * oc + o] = src[o * taps + t];
      }));
    }
  }

  void eval(Env& env) const override {
    auto& p = env.p;
    Share x = p.add_public(env.get(in()), Pub(static_cast<uint64_t>(static_cast<int64_t>(q.input_offset))));
    const Share& w = env.get(q.filter_offset != 0 || grouped ? slot : filter);
    Share acc = layer_product(env, *this, depthwise || grouped ? mpc::Product::kDepthwise : mpc::Product::kConv2d,
                              x, w, g, q);
    acc = layer_accumulator(env, *this, acc, bias);
    Share y = requantize_output(env, acc, q, narrow, out_bits);
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

std::unique_ptr<Kernel> make(bool depthwise, const ConvParams& p, const TensorInfo& in, const TensorInfo& filter,
                             const TensorInfo* bias, const TensorInfo& out) {
  const char* op = depthwise ? "DEPTHWISE_CONV_2D" : "CONV_2D";
  require_q8(in, "input");
  require_q8(filter, "filter");
  require_q8(out, "output");
  require(in.shape.size() == 4 && filter.shape.size() == 4 && out.shape.size() == 4,
          std::string(op) + ": tensors must be 4-D");
  auto k = std::make_unique<Conv>();
  k->depthwise = depthwise;
  const int64_t oc = depthwise ? filter.shape[3] : filter.shape[0];
  if (depthwise) {
    require(filter.shape[0] == 1, "DEPTHWISE_CONV_2D: filter must be [1, KH, KW, OC]");
    require(oc == in.shape[3] * p.depth_multiplier,
            "DEPTHWISE_CONV_2D: output channels must equal input channels * depth_multiplier");
  } else if (filter.shape[3] != in.shape[3]) {
    // groups = in_channels / filter_in_channels (TFLite's reference ConvPerChannel): supported
    // when each group has one input channel, i.e. a depthwise convolution
    require(filter.shape[3] == 1 && in.shape[3] > 0 && oc % in.shape[3] == 0,
            "CONV_2D: grouped convolution with " + std::to_string(filter.shape[3]) +
                " input channels per group is not supported (filter input channels " +
                std::to_string(filter.shape[3]) + ", input channels " + std::to_string(in.shape[3]) +
                "); one input channel per group (depthwise) is");
    k->grouped = true;
  }
  // A dilated filter far wider than the input (e.g. dilation 2^20, found by fuzzing) made TFLite's
  // reference kernel and this one disagree: refused. With SAME padding a filter somewhat larger
  // than the input is ordinary (ResNet's last 3x3 convolutions on a 1x1 map at small input sizes).
  const auto too_wide = [&](int64_t dil, int64_t k, int64_t n) {
    return p.same ? dil * (k - 1) >= 2 * n + 8 : dil * (k - 1) >= n;
  };
  require(!too_wide(p.dilation_h, filter.shape[1], in.shape[1]) && !too_wide(p.dilation_w, filter.shape[2], in.shape[2]),
          std::string(op) + ": the dilated filter is larger than the input");
  k->g = mpc::ConvGeom::make(in.shape[0], in.shape[1], in.shape[2], in.shape[3], filter.shape[1], filter.shape[2], oc,
                             p.stride_h, p.stride_w, p.dilation_h, p.dilation_w, p.same);
  k->g.depth_multiplier = k->grouped ? static_cast<int>(oc / in.shape[3]) : p.depth_multiplier;
  require(out.shape == Shape({k->g.n, k->g.oh, k->g.ow, oc}),
          std::string(op) + ": output shape " + mpc::shape_str(out.shape) + " does not match the computed " +
              mpc::shape_str({k->g.n, k->g.oh, k->g.ow, oc}));
  k->q = output_quant(op, in, filter, out, oc, p.act, false);
  k->filter = filter.index;
  k->bias = secret_weights(*k, op, filter, bias, oc);
  k->narrow = narrow_acc(k->q, oc > 0 ? static_cast<int64_t>(filter.size()) / oc : 0, k->acc_max_product);
  if (k->q.filter_offset != 0 || k->grouped) k->prepare_only = {filter.index};
  k->out_shape = out.shape;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace

std::unique_ptr<Kernel> make_conv2d(const ConvParams& p, const TensorInfo& in, const TensorInfo& filter,
                                    const TensorInfo* bias, const TensorInfo& out) {
  return make(false, p, in, filter, bias, out);
}

std::unique_ptr<Kernel> make_depthwise_conv2d(const ConvParams& p, const TensorInfo& in, const TensorInfo& filter,
                                              const TensorInfo* bias, const TensorInfo& out) {
  return make(true, p, in, filter, bias, out);
}

}  // namespace tflite_mpc
