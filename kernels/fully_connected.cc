// FULLY_CONNECTED (int8, per-tensor or per-channel weights), mirroring
// reference_integer_ops::FullyConnected[PerChannel]:
//   acc[b, o] = sum_i W[o, i] * (x[b, i] + input_offset) [+ bias[o]], then requantize
// with ONE rounding step, (acc * m + 2^(t-1)) >> t, t = 31 - shift, as the reference
// kernel of TF 2.21 and LiteRT 2.3 computes (measured; tflite-runtime 2.14 rounds
// twice like CONV_2D: option fc_rounding=double).
// uint8 (per-tensor weights with a zero point), reference_ops::FullyConnected (uint8):
//   acc = sum (W[o, i] + filter_offset) * (x[b, i] + input_offset) [+ bias[o]], requantized
// like int8 (option fc_rounding: BUILTIN_REF of TF 2.21 rounds once for uint8 too, measured
// on a 256-input layer where two steps differ by 1 LSB).
#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

class FullyConnected : public Kernel {
 public:
  int filter = -1, bias = -1;
  int64_t batch = 1, in_features = 0, out_features = 0;
  OutputQuant q;
  Shape out_shape;

  const char* name() const override { return "FULLY_CONNECTED"; }
  int input_bits(const std::string& protocol, bool exact, bool debug) const override {
    return layer_reads(protocol, exact, debug, q, narrow);
  }

  void prepare(Env& env) override {
    // Weights [out, in] -> [in, out] once, so every inference is one GEMM. The result
    // goes to this kernel's own slot: the shared weight tensor itself stays as it is
    // (another node may read the same weights).
    // uint8: w - zp_w, formed once here; int8 weights are read in place (no copy: a large FC
    // layer's weight shares take gigabytes)
    Share offset;
    if (q.filter_offset != 0) offset = offset_weights(env, filter, q.filter_offset);
    const Share& w = q.filter_offset != 0 ? offset : env.get(filter);
    const int64_t O = out_features, I = in_features;
    env.set(slot, env.p.linear(w, {I, O}, [&](const mpc::u64* src, mpc::u64* dst) {
      for (int64_t o = 0; o < O; ++o)
        for (int64_t i = 0; i < I; ++i) dst[i * O + o] = src[o * I + i];
    }));
  }

  void eval(Env& env) const override {
    auto& p = env.p;
    Share x = p.add_public(env.get(in()), Pub(static_cast<uint64_t>(static_cast<int64_t>(q.input_offset))));
    x.shape = {batch, in_features};
    Share acc = layer_product(env, *this, mpc::Product::kMatmul, x, env.get(slot), {}, q);
    acc = layer_accumulator(env, *this, acc, bias);
    Share y = requantize_output(env, acc, q, narrow, out_bits);
    y.shape = out_shape;
    env.set(out(), std::move(y));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_fully_connected(const FullyConnectedParams& p, const TensorInfo& in,
                                             const TensorInfo& filter, const TensorInfo* bias,
                                             const TensorInfo& out) {
  require_q8(in, "input");
  require_q8(filter, "filter");
  require_q8(out, "output");
  require(filter.shape.size() == 2, "FULLY_CONNECTED: weights must be 2-D");
  auto k = std::make_unique<FullyConnected>();
  k->out_features = filter.shape[0];
  k->in_features = filter.shape[1];
  require(k->in_features > 0 && in.size() % k->in_features == 0,
          "FULLY_CONNECTED: input size is not a multiple of the weights' input dimension");
  k->batch = in.size() / k->in_features;
  require(out.size() == static_cast<size_t>(k->batch * k->out_features),
          "FULLY_CONNECTED: output size does not match batch x units");
  k->q = output_quant("FULLY_CONNECTED", in, filter, out, k->out_features, p.act, true);
  k->q.single_rounding = p.single_rounding;
  k->filter = filter.index;
  k->bias = secret_weights(*k, "FULLY_CONNECTED", filter, bias, k->out_features);
  k->narrow = narrow_acc(k->q, k->in_features, k->acc_max_product);
  k->prepare_only = {filter.index};
  k->out_shape = out.shape;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
