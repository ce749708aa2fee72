// Secure TFLite kernels, written once against the primitive interface
// (mpc/protocol.h). Each op file mirrors TFLite's reference integer kernel:
// a params struct computed from public quantization data (Prepare) and an
// eval on secret shares. Tensors here are described without any TFLite type
// (the delegate translates); values are int8 (or int32) numbers held as
// elements of Z_2^64.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "mpc/ops.h"
#include "mpc/protocol.h"

namespace tflite_mpc {

using mpc::ArgError;
using mpc::Pub;
using mpc::Share;
using mpc::Shape;
using mpc::Shifts;
using mpc::Vec;

enum class DType { kFloat32, kInt8, kUInt8, kInt16, kInt32, kInt64, kBool, kOther };
const char* dtype_name(DType t);

// Public description of a tensor: shape, type, quantization, and for
// constants their bytes (only the model owner needs weight bytes).
struct TensorInfo {
  int index = -1;
  Shape shape;
  DType type = DType::kOther;
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  int qdim = 0;
  bool constant = false;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  float scale() const { return scales.empty() ? 0.f : scales[0]; }
  int32_t zero_point() const { return zero_points.empty() ? 0 : zero_points[0]; }
  size_t size() const { return mpc::shape_size(shape); }
};

enum class Act { kNone, kRelu, kReluN1To1, kRelu6, kOther };

// Per-party state while a plan runs.
struct Env {
  mpc::Protocol& p;
  bool exact;  // exact (bit-faithful) or probabilistic truncation
  std::unordered_map<int, Share>& vals;
  const Share& get(int index) const;
  void set(int index, Share s) { vals[index] = std::move(s); }
};

// Narrow accumulators for the requantization of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
// (the clamp compares the accumulator with thresholds, on acc_bits + 1 bits: the narrower the
// accumulator, the fewer bits every comparison costs). The products' sum s has a public bound
// |s| <= bound (terms x max |product|) far below 2^31, but the bias b is the model owner's
// secret and may take any int32 value. With public per-channel A (every accumulator below A
// requantizes to the clamp's lo) and D (every one at or above A + D to its hi), found from
// the multiplier alone, the model owner shares b' = clamp(b - A, -(bound + 1), D + bound) once
// instead, and the requantization runs on s + b' (a public offset A adds A * mult to its
// constant): where b' = b - A this is s + b - A exactly; where b' was saturated, s + b' and
// s + b both lie below A (lo) or both at or above A + D (hi). s + b' lies in
// [-(2 bound + 1), D + 2 bound]: acc_bits = 1 + ceil(log2(D + 2 bound + 2)), so that b' also
// fits the power-of-two range [-(bound + 1), -(bound + 1) + 2^(acc_bits - 1)), which an
// actively secure protocol checks like every shared input's type range (check_ranges): with
// any b' in it, s + b' fits acc_bits; a model owner choosing b' there only chooses another
// bias.
struct NarrowAcc {
  int acc_bits = 0;             // 0: off (the accumulator keeps its 32 bits)
  int64_t bound = 0;            // |sum of products| <= bound
  std::vector<int64_t> anchor;  // A per requantization channel (1: per tensor)
  std::vector<int64_t> span;    // D per requantization channel
  bool on() const { return acc_bits > 0; }
  // b' lies in [derived_lo, derived_lo + 2^derived_bits): every s + b' then fits acc_bits.
  int64_t derived_lo() const { return -(bound + 1); }
  int derived_bits() const { return acc_bits - 1; }
  // No anchor, no derived bias: an accumulator known to satisfy |acc| <= bound (e.g. MUL's
  // product of two 8-bit values minus their zero points); off where that needs 32 bits or more.
  static NarrowAcc bounded(int64_t bound);
  // b -> b' per output channel (bias.size() channels; anchor and span broadcast): the model owner.
  // Only for a plan from narrow_acc (anchor non-empty).
  Vec derive(const Vec& bias) const;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual const char* name() const = 0;
  virtual void eval(Env& env) const = 0;
  // Called once after the secret constants are shared (e.g. to lay out weights).
  virtual void prepare(Env&) {}
  // Constant tensors consumed as secret operands (weights, biases): the model
  // owner secret-shares them once, before the first inference.
  std::vector<int> secret_constants;
  // Key of values this kernel derives in prepare() (e.g. laid-out weights) in
  // Env::vals: negative, so never a tensor index; set by the delegate. Shared
  // tensors (a weight read by two nodes) are never overwritten.
  int slot = -1;
  // Secret constants read only by prepare(): the delegate frees their shares once
  // every kernel is prepared (unless another kernel reads them in eval).
  std::vector<int> prepare_only;
  std::vector<int> inputs, outputs;  // secret tensors read / written
  // CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: the int32 bias and the number of
  // products per accumulator. TFLite's accumulator is int32 (it wraps on overflow, the ring
  // does not): the model owner refuses a bias that could overflow it, before sharing it.
  int acc_bias = -1;
  int64_t acc_terms = 0;
  int64_t acc_max_product = 255 * 128;  // max |(input + offset) * (weight + offset)|: 255 * 255 for uint8
  // CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: the narrow accumulator plan (NarrowAcc; off
  // if it does not pay). With a bias tensor, the model owner shares its derived b' once, beside
  // the constants, under narrow_slot() (never a tensor index or another kernel's slot).
  NarrowAcc narrow;
  int narrow_slot() const { return slot - (1 << 28); }
  void check_owner_constant(int index, const Vec& values) const;
  // The bias range the model owner accepts: [-(bias_bound + 1), bias_bound], so that TFLite's
  // int32 accumulator cannot overflow (check_owner_constant; an actively secure protocol checks
  // the shared bias against it too, check_ranges).
  int64_t bias_bound() const { return (int64_t(1) << 31) - 1 - acc_terms * acc_max_product; }
  int in() const { return inputs.at(0); }
  int out() const { return outputs.at(0); }
  // Narrow rings (mpc::RequantSpec::out_bits): how many low bits of in() this kernel reads
  // under `protocol` (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: what their requantization
  // reads of the accumulator; 64: all), and how many of out() its readers read (set by the
  // delegate's plan: the largest input_bits of the kernels reading it, 64 for anything else).
  virtual int input_bits(const std::string& /*protocol*/, bool /*exact*/, bool /*debug*/) const { return 64; }
  int out_bits = 64;
};

// Requantization of a conv / fully connected layer's int32 accumulators
// (TFLite's PopulateConvolutionQuantizationParams and activation range).
struct OutputQuant {
  std::vector<int32_t> mult;
  std::vector<int> shift;
  int32_t input_offset = 0, zp_out = 0, act_lo = -128, act_hi = 127;
  // uint8 weights (the legacy asymmetric scheme): -(weight zero point), added to the weight
  // shares once in prepare(); 0 for int8 (symmetric weights).
  int32_t filter_offset = 0;
  // Exact mode: one rounding step (TFLite's reference FULLY_CONNECTED in TF >= 2.15 /
  // LiteRT) instead of gemmlowp's two (CONV_2D, and FULLY_CONNECTED in TF <= 2.14).
  bool single_rounding = false;
};
// The plan for one layer (off when it would not narrow the accumulator below 31 bits, or a
// multiplier is zero or too large for the shifted constant to stay below 2^61).
NarrowAcc narrow_acc(const OutputQuant& q, int64_t terms, int64_t max_product);
// `per_tensor_float_product`: FULLY_CONNECTED with one weight scale forms
// in_scale * w_scale in float before dividing in double (uint8 models always do:
// GetQuantizedConvolutionMultipler). uint8: weights per tensor with any zero point.
OutputQuant output_quant(const char* op, const TensorInfo& in, const TensorInfo& filter, const TensorInfo& out,
                         int64_t channels, Act act, bool per_tensor_float_product);
// Registers the filter and optional int32 bias as the model owner's secret
// constants; returns the bias tensor index or -1.
int secret_weights(Kernel& k, const char* op, const TensorInfo& filter, const TensorInfo* bias, int64_t channels);

// ---- shared helpers (kernels/common.cc)
// TFLite QuantizeMultiplier(double) -> (q_fixed, shift).
void quantize_multiplier(double m, int32_t* q, int* shift);
// TFLite CalculateActivationRangeQuantized for int8.
void activation_range(Act act, float scale, int32_t zero_point, int32_t* lo, int32_t* hi);
// uint8 weights with their public offset added (w - zp_w, a local operation): a new share.
Share offset_weights(Env& env, int filter, int32_t filter_offset);
// Ring encoding of a constant tensor's int8 / uint8 / int32 values.
Vec encode_constant(const TensorInfo& t);
void require(bool ok, const std::string& what);
void require_int8(const TensorInfo& t, const char* role);
// 8-bit quantized tensors: int8 (symmetric or asymmetric) or uint8 (the legacy asymmetric
// scheme of the paper's models). Same checks as require_int8, zero point in the type's range.
bool is_q8(DType t);
void require_q8(const TensorInfo& t, const char* role);
// The type's value range: [-128, 127] for int8, [0, 255] for uint8.
int32_t qmin(const TensorInfo& t);
int32_t qmax(const TensorInfo& t);
// CalculateActivationRangeQuantized for the output tensor's own type (int8 or uint8).
void activation_range(Act act, const TensorInfo& out, int32_t* lo, int32_t* hi);
// Requantize int32 accumulators (TFLite MultiplyByQuantizedMultiplier, double or
// single rounding), add the output zero point and clamp to [lo, hi]: the tail of
// conv / fc / add.
Share requantize_output(Env& env, const Share& acc, const std::vector<int32_t>& mult,
                        const std::vector<int>& shift, int32_t zp_out, int32_t lo, int32_t hi,
                        bool single_rounding = false, const NarrowAcc* narrow = nullptr, int out_bits = 64);
mpc::RequantSpec requant_spec(bool exact, const std::vector<int32_t>& mult, const std::vector<int>& shift,
                              int32_t zp_out, int32_t lo, int32_t hi, bool single_rounding, const NarrowAcc* narrow);
Share requantize_output(Env& env, const Share& acc, const OutputQuant& q);
// The same for a layer with a narrow accumulator plan (off: as above): acc is s + b'; its output
// is needed mod 2^out_bits (Kernel::out_bits).
Share requantize_output(Env& env, const Share& acc, const OutputQuant& q, const NarrowAcc& n, int out_bits = 64);
// What a layer's requantization reads of its accumulator (mpc::requant_reads; 64 with debug
// checks, which open it), and the layer's products needed only that far (Product::out_bits).
int layer_reads(const std::string& protocol, bool exact, bool debug, const OutputQuant& q, const NarrowAcc& n);
Share layer_product(Env& env, const Kernel& k, mpc::Product::Kind kind, const Share& x, const Share& w,
                    const mpc::ConvGeom& g, const OutputQuant& q);
// s -> the accumulator the layer's requantization reads: s + bias (bias < 0: none), or with a
// narrow plan s + b' (the owner's share under narrow_slot(); without a bias tensor b' is public).
Share layer_accumulator(Env& env, const Kernel& k, const Share& s, int bias);
// acc + bias broadcast along the innermost (channel) axis: a conv / fc bias.
Share add_channel_bias(mpc::Protocol& p, const Share& acc, const Share& bias);

// ---- op factories (one file each)
struct ConvParams {
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool same = true;
  int depth_multiplier = 1;  // depthwise only
  Act act = Act::kNone;
};
std::unique_ptr<Kernel> make_conv2d(const ConvParams& p, const TensorInfo& in, const TensorInfo& filter,
                                    const TensorInfo* bias, const TensorInfo& out);
std::unique_ptr<Kernel> make_depthwise_conv2d(const ConvParams& p, const TensorInfo& in, const TensorInfo& filter,
                                              const TensorInfo* bias, const TensorInfo& out);
struct FullyConnectedParams {
  Act act = Act::kNone;
  bool keep_num_dims = false;
  bool single_rounding = true;  // option fc_rounding: single (TF >= 2.15, LiteRT) | double (TF <= 2.14)
};
std::unique_ptr<Kernel> make_fully_connected(const FullyConnectedParams& p, const TensorInfo& in,
                                             const TensorInfo& filter, const TensorInfo* bias,
                                             const TensorInfo& out);
struct PoolParams {
  int stride_h = 1, stride_w = 1, filter_h = 1, filter_w = 1;
  bool same = true;
  Act act = Act::kNone;
};
std::unique_ptr<Kernel> make_average_pool2d(const PoolParams& p, const TensorInfo& in, const TensorInfo& out);
std::unique_ptr<Kernel> make_max_pool2d(const PoolParams& p, const TensorInfo& in, const TensorInfo& out);
std::unique_ptr<Kernel> make_add(Act act, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out);
std::unique_ptr<Kernel> make_reshape(const TensorInfo& in, const TensorInfo& out);  // RESHAPE, SQUEEZE
std::unique_ptr<Kernel> make_mean(const std::vector<int>& axes, const TensorInfo& in, const TensorInfo& out);
std::unique_ptr<Kernel> make_softmax(float beta, const TensorInfo& in, const TensorInfo& out);
// Element-wise int8 -> int8 ops evaluated as a public 256-entry table (kernels/elementwise.cc);
// `param` is LEAKY_RELU's alpha (ignored otherwise).
enum class Elementwise { kLogistic, kTanh, kHardSwish, kGelu, kLeakyRelu, kRelu, kRelu6, kReluN1To1, kRelu0To1,
                         kQuantize, kGeluApprox };
std::unique_ptr<Kernel> make_elementwise(Elementwise op, float param, const TensorInfo& in, const TensorInfo& out);
// PRELU with a constant (secret) alpha, broadcast to the input.
std::unique_ptr<Kernel> make_prelu(const TensorInfo& in, const TensorInfo& alpha, const TensorInfo& out);
// A float region the converter leaves in an int8 graph, DEQUANTIZE -> unary float ops ->
// QUANTIZE (ELU, a layer normalisation's NEG): a function of the 8-bit input, so a public
// 256-entry table computed with TFLite's reference float arithmetic (DEQUANTIZE in double,
// each op, QUANTIZE's round(x / scale) + zero point). `ops`: the float ops' names in order.
bool float_region_op(const std::string& op);
std::unique_ptr<Kernel> make_float_region(const TensorInfo& in, const std::vector<std::string>& ops,
                                          const TensorInfo& out);

// QUANTIZE / DEQUANTIZE at the graph edges run in plaintext at the data owner
// (before sharing) and at the output recipient (after reveal).
void quantize_input(const TensorInfo& in, const TensorInfo& out, const float* x, int64_t* q, size_t n);
void dequantize_output(const TensorInfo& in, const int64_t* q, float* y, size_t n);

// ---- data movement (kernels/movement.cc)
// Public index maps on secret shares (no communication): every output element is an
// element of the data operands (concatenated in order) or the output zero point.
enum class Movement { kPad, kMirrorPad, kConcatenation, kTranspose, kSlice, kStridedSlice, kSplit, kUnpack, kPack,
                      kGather, kGatherNd, kDepthToSpace, kSpaceToDepth, kResizeNearest, kTile, kBroadcastTo,
                      kBatchToSpace, kSpaceToBatch };
struct MovementParams {
  int axis = 0, batch_dims = 0, block_size = 1;
  bool reflect = false;                                          // MIRROR_PAD: REFLECT (else SYMMETRIC)
  bool align_corners = false, half_pixel_centers = false;       // RESIZE_NEAREST_NEIGHBOR
  int begin_mask = 0, end_mask = 0, ellipsis_mask = 0, new_axis_mask = 0, shrink_axis_mask = 0;  // STRIDED_SLICE
  bool offset = false;
  // Public integer index tensors (paddings, perm, begin/end/strides, indices, multiples,
  // block shape and crops), in the op's input order, and their shapes.
  std::vector<std::vector<int64_t>> ints;
  std::vector<Shape> int_shapes;
};
// `data`: the secret operands (PADV2's pad value last); `outs`: every output (SPLIT, UNPACK).
std::unique_ptr<Kernel> make_movement(Movement op, const MovementParams& p, const std::vector<TensorInfo>& data,
                                      const std::vector<TensorInfo>& outs);
// Values of a constant int32 / int64 tensor (a public index parameter), refused otherwise.
std::vector<int64_t> index_values(const TensorInfo& t, const char* what);

// ---- broadcasting arithmetic and reductions (kernels/arith.cc, kernels/reduce.cc)
// TFLite's broadcast of two operand shapes (right-aligned, each dimension equal or 1), at most
// `max_rank` dimensions; refused naming both shapes.
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b, size_t max_rank);
// For every element of `out` (row-major), the flat index of the element of `in` it reads
// (empty when in == out: no copy needed).
std::vector<int64_t> broadcast_index(const Shape& in, const Shape& out);
// The public linear map that expands a share to the broadcast shape (index from broadcast_index).
Share expand(mpc::Protocol& p, const Share& x, const Shape& out, const std::vector<int64_t>& index);
// ADD (sub = false) and SUB (sub = true), with broadcasting.
std::unique_ptr<Kernel> make_add_sub(bool sub, Act act, const TensorInfo& a, const TensorInfo& b,
                                     const TensorInfo& out);
std::unique_ptr<Kernel> make_mul(Act act, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out);
std::unique_ptr<Kernel> make_squared_difference(const TensorInfo& a, const TensorInfo& b, const TensorInfo& out);
// MAXIMUM (max = true) / MINIMUM on the raw 8-bit values, with broadcasting.
std::unique_ptr<Kernel> make_max_min(bool max, const TensorInfo& a, const TensorInfo& b, const TensorInfo& out);
std::unique_ptr<Kernel> make_batch_matmul(bool adj_x, bool adj_y, const TensorInfo& lhs, const TensorInfo& rhs,
                                          const TensorInfo& out);
// RSQRT (int8): a public 256-entry table of TFLite's integer arithmetic.
std::unique_ptr<Kernel> make_rsqrt(const TensorInfo& in, const TensorInfo& out);
// REDUCE_MAX (max = true) / REDUCE_MIN over any axes (kernels/reduce.cc).
std::unique_ptr<Kernel> make_reduce_max_min(bool max, const std::vector<int>& axes, const TensorInfo& in,
                                            const TensorInfo& out);
// Reduction over `axes` (negative counted from the end, repeats allowed): for every input element
// (row-major) its output element; `count` = elements per output. Checks the output size.
std::vector<int64_t> reduction_map(const char* op, const std::vector<int>& axes, const TensorInfo& in,
                                   const TensorInfo& out, int64_t* count);
// SUM: QuantizedMeanOrSum with compute_sum (kernels/mean.cc).
std::unique_ptr<Kernel> make_sum(const std::vector<int>& axes, const TensorInfo& in, const TensorInfo& out);

// ---- resize, transposed convolution, arg max (kernels/resize.cc, kernels/transpose_conv.cc, kernels/argmax.cc)
// RESIZE_BILINEAR (int8): TFLite's fixed-point interpolation, exact rounding division.
std::unique_ptr<Kernel> make_resize_bilinear(bool align_corners, bool half_pixel_centers, const TensorInfo& in,
                                             const TensorInfo* size, const TensorInfo& out);
struct TransposeConvParams {
  int stride_h = 1, stride_w = 1;
  bool same = true;
  Act act = Act::kNone;
};
// TRANSPOSE_CONV (int8): inputs output_shape (public int32), filter [OC, KH, KW, C], input, optional bias.
std::unique_ptr<Kernel> make_transpose_conv(const TransposeConvParams& p, const TensorInfo& output_shape,
                                            const TensorInfo& filter, const TensorInfo& in, const TensorInfo* bias,
                                            const TensorInfo& out);
// ARG_MAX / ARG_MIN (8-bit input) along a constant axis; int32 or int64 indices.
std::unique_ptr<Kernel> make_arg_min_max(bool min, const TensorInfo& in, const TensorInfo& axis, const TensorInfo& out);
// Secret index of the first maximum (minimum) of every row of x ([rows, len] row-major;
// entries fit `bits` - 1 signed bits): a log-depth tournament, ties to the lowest index.
Share arg_best_rows(mpc::Protocol& p, const Share& x, int64_t rows, int64_t len, bool min, int bits);

}  // namespace tflite_mpc
