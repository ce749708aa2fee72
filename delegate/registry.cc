#include "delegate/registry.h"

#include <cstring>
#include <sstream>

namespace tflite_mpc {

namespace {
DType map_type(TfLiteType t) {
  switch (t) {
    case kTfLiteFloat32: return DType::kFloat32;
    case kTfLiteInt8: return DType::kInt8;
    case kTfLiteUInt8: return DType::kUInt8;
    case kTfLiteInt16: return DType::kInt16;
    case kTfLiteInt32: return DType::kInt32;
    case kTfLiteInt64: return DType::kInt64;
    case kTfLiteBool: return DType::kBool;
    default: return DType::kOther;
  }
}

Act map_act(TfLiteFusedActivation a) {
  switch (a) {
    case kTfLiteActNone: return Act::kNone;
    case kTfLiteActRelu: return Act::kRelu;
    case kTfLiteActReluN1To1: return Act::kReluN1To1;
    case kTfLiteActRelu6: return Act::kRelu6;
    default: return Act::kOther;
  }
}

void check_act(TfLiteFusedActivation a) {
  require(map_act(a) != Act::kOther, "fused activation " + std::to_string(static_cast<int>(a)) +
                                         " (TANH/SIGMOID/SIGN_BIT) is not supported");
}

bool padding_same(TfLitePadding p) {
  require(p == kTfLitePaddingSame || p == kTfLitePaddingValid, "unknown padding");
  return p == kTfLitePaddingSame;
}
// CONV_2D and DEPTHWISE_CONV_2D options share these fields.
template <class B>
ConvParams conv_params(const B& b) {
  ConvParams p;
  p.stride_h = b.stride_height;
  p.stride_w = b.stride_width;
  p.dilation_h = b.dilation_height_factor;
  p.dilation_w = b.dilation_width_factor;
  p.same = padding_same(b.padding);
  p.act = map_act(b.activation);
  return p;
}
}  // namespace

namespace {
// The reduced axes of MEAN / SUM / REDUCE_MAX / REDUCE_MIN: a public constant int32 input 1.
std::vector<int> reduce_axes(const NodeView& n, const char* op) {
  TensorInfo axes = n.input(1);
  require(axes.constant && axes.type == DType::kInt32 && axes.data && axes.bytes >= 4 * axes.size(),
          std::string(op) + ": axes must be a constant int32 tensor");
  std::vector<int> ax;
  for (size_t i = 0; i < axes.size(); ++i) {
    int32_t a;
    std::memcpy(&a, axes.data + 4 * i, 4);
    ax.push_back(a);
  }
  return ax;
}

// The fused activation of ADD / SUB / MUL, from their parameters.
template <class P>
Act fused_activation(const NodeView& n, const char* op) {
  auto* b = static_cast<const P*>(n.node->builtin_data);
  require(b, std::string("missing ") + op + " parameters");
  check_act(b->activation);
  return map_act(b->activation);
}
}  // namespace

TensorInfo tensor_info(TfLiteContext* ctx, int index) {
  require(index >= 0 && static_cast<size_t>(index) < ctx->tensors_size, "tensor index out of range");
  const TfLiteTensor& t = ctx->tensors[index];
  TensorInfo info;
  info.index = index;
  info.type = map_type(t.type);
  if (t.dims)
    for (int i = 0; i < t.dims->size; ++i) info.shape.push_back(t.dims->data[i]);
  if (t.quantization.type == kTfLiteAffineQuantization && t.quantization.params) {
    auto* q = static_cast<const TfLiteAffineQuantization*>(t.quantization.params);
    if (q->scale)
      for (int i = 0; i < q->scale->size; ++i) info.scales.push_back(q->scale->data[i]);
    if (q->zero_point)
      for (int i = 0; i < q->zero_point->size; ++i) info.zero_points.push_back(q->zero_point->data[i]);
    info.qdim = q->quantized_dimension;
  } else if (t.params.scale != 0.f) {
    info.scales = {t.params.scale};
    info.zero_points = {t.params.zero_point};
  }
  info.constant = t.allocation_type == kTfLiteMmapRo || t.allocation_type == kTfLitePersistentRo;
  info.data = reinterpret_cast<const uint8_t*>(t.data.raw_const);
  info.bytes = t.bytes;
  return info;
}

TensorInfo NodeView::input(int k) const {
  require(has_input(k), "missing input " + std::to_string(k));
  return tensor_info(ctx, node->inputs->data[k]);
}
TensorInfo NodeView::output(int k) const {
  require(k < node->outputs->size, "missing output " + std::to_string(k));
  return tensor_info(ctx, node->outputs->data[k]);
}

const char* builtin_name(int code) {
  static const char* const kNames[] = {
#include "delegate/builtin_names.inc"
  };
  constexpr int n = static_cast<int>(sizeof(kNames) / sizeof(kNames[0]));
  if (code >= 0 && code < n) return kNames[code];
  return "unknown builtin op (newer than this plugin's schema)";
}

// Calls f(params) when the node has builtin parameters of type T.
template <class T, class F>
static void put(std::ostringstream&, const void* b, F f) {
  if (b) f(*static_cast<const T*>(b));
}

std::string public_signature(const NodeView& n) {
  std::ostringstream o;
  const int code = n.reg->builtin_code;
  o << "op=" << code << "/" << n.reg->version << ";";
  const void* b = n.node->builtin_data;
  switch (code) {
    case kTfLiteBuiltinConv2d: {
      auto* p = static_cast<const TfLiteConvParams*>(b);
      if (p) o << p->padding << "," << p->stride_width << "," << p->stride_height << "," << p->activation << ","
               << p->dilation_width_factor << "," << p->dilation_height_factor;
      break;
    }
    case kTfLiteBuiltinDepthwiseConv2d: {
      auto* p = static_cast<const TfLiteDepthwiseConvParams*>(b);
      if (p) o << p->padding << "," << p->stride_width << "," << p->stride_height << "," << p->activation << ","
               << p->dilation_width_factor << "," << p->dilation_height_factor;
      break;
    }
    case kTfLiteBuiltinAveragePool2d:
    case kTfLiteBuiltinMaxPool2d: {
      auto* p = static_cast<const TfLitePoolParams*>(b);
      if (p) o << p->padding << "," << p->stride_width << "," << p->stride_height << "," << p->filter_width << ","
               << p->filter_height << "," << p->activation;
      break;
    }
    case kTfLiteBuiltinFullyConnected: {
      auto* p = static_cast<const TfLiteFullyConnectedParams*>(b);
      if (p) o << p->activation << "," << p->weights_format << "," << p->keep_num_dims;
      break;
    }
    case kTfLiteBuiltinAdd: {
      auto* p = static_cast<const TfLiteAddParams*>(b);
      if (p) o << p->activation << "," << p->pot_scale_int16;
      break;
    }
    case kTfLiteBuiltinSoftmax: {
      auto* p = static_cast<const TfLiteSoftmaxParams*>(b);
      if (p) o << p->beta;
      break;
    }
    case kTfLiteBuiltinMean:
    case kTfLiteBuiltinSum:
    case kTfLiteBuiltinReduceMax:
    case kTfLiteBuiltinReduceMin: {
      auto* p = static_cast<const TfLiteReducerParams*>(b);
      if (p) o << p->keep_dims;
      break;
    }
    case kTfLiteBuiltinReshape: {
      auto* p = static_cast<const TfLiteReshapeParams*>(b);
      if (p && p->num_dimensions >= 0 && p->num_dimensions <= TFLITE_ABI_RESHAPE_MAX_DIMS)
        for (int i = 0; i < p->num_dimensions; ++i) o << p->shape[i] << ",";
      break;
    }
    case kTfLiteBuiltinSqueeze: {
      auto* p = static_cast<const TfLiteSqueezeParams*>(b);
      if (p && p->num_squeeze_dims >= 0 && p->num_squeeze_dims <= TFLITE_ABI_SQUEEZE_MAX_DIMS)
        for (int i = 0; i < p->num_squeeze_dims; ++i) o << p->squeeze_dims[i] << ",";
      break;
    }
    case kTfLiteBuiltinStridedSlice: {
      auto* p = static_cast<const TfLiteStridedSliceParams*>(b);
      if (p) o << p->begin_mask << "," << p->end_mask << "," << p->ellipsis_mask << "," << p->new_axis_mask << ","
               << p->shrink_axis_mask << "," << p->offset;
      break;
    }
    case kTfLiteBuiltinPack: {
      auto* p = static_cast<const TfLitePackParams*>(b);
      if (p) o << p->values_count << "," << p->axis;
      break;
    }
    case kTfLiteBuiltinShape: {
      auto* p = static_cast<const TfLiteShapeParams*>(b);
      if (p) o << p->out_type;
      break;
    }
    case kTfLiteBuiltinGather: {
      auto* p = static_cast<const TfLiteGatherParams*>(b);
      if (p) o << p->axis << "," << p->batch_dims;
      break;
    }
    case kTfLiteBuiltinConcatenation: {
      auto* p = static_cast<const TfLiteConcatenationParams*>(b);
      if (p) o << p->axis << "," << p->activation;
      break;
    }
    case kTfLiteBuiltinSub: {
      auto* p = static_cast<const TfLiteSubParams*>(b);
      if (p) o << p->activation << "," << p->pot_scale_int16;
      break;
    }
    case kTfLiteBuiltinMul: {
      auto* p = static_cast<const TfLiteMulParams*>(b);
      if (p) o << p->activation;
      break;
    }
    case kTfLiteBuiltinLeakyRelu: {
      auto* p = static_cast<const TfLiteLeakyReluParams*>(b);
      if (p) o << p->alpha;
      break;
    }
    case kTfLiteBuiltinGelu: {
      auto* p = static_cast<const TfLiteGeluParams*>(b);
      if (p) o << p->approximate;
      break;
    }
    case kTfLiteBuiltinBatchMatmul: {
      auto* p = static_cast<const TfLiteBatchMatMulParams*>(b);
      if (p) o << p->adj_x << "," << p->adj_y << "," << p->asymmetric_quantize_inputs;
      break;
    }
    case kTfLiteBuiltinResizeBilinear: {
      auto* p = static_cast<const TfLiteResizeParams*>(b);
      if (p) o << p->align_corners << "," << p->half_pixel_centers;
      break;
    }
    case kTfLiteBuiltinTransposeConv: {
      auto* p = static_cast<const TfLiteTransposeConvParams*>(b);
      if (p) o << p->padding << "," << p->stride_width << "," << p->stride_height
               << (n.reg->version >= 4 ? "," + std::to_string(p->activation) : std::string());
      break;
    }
    case kTfLiteBuiltinArgMax:
    case kTfLiteBuiltinArgMin: {
      auto* p = static_cast<const TfLiteArgMaxParams*>(b);
      if (p) o << p->output_type;
      break;
    }
    // data movement (kernels/movement.cc)
    case kTfLiteBuiltinMirrorPad: put<TfLiteMirrorPaddingParams>(o, b, [&](auto& q) { o << q.mode; }); break;
    case kTfLiteBuiltinDepthToSpace:
    case kTfLiteBuiltinSpaceToDepth: put<TfLiteDepthToSpaceParams>(o, b, [&](auto& q) { o << q.block_size; }); break;
    case kTfLiteBuiltinSplit:
    case kTfLiteBuiltinSplitV: put<TfLiteSplitParams>(o, b, [&](auto& q) { o << q.num_splits; }); break;
    case kTfLiteBuiltinUnpack: put<TfLiteUnpackParams>(o, b, [&](auto& q) { o << q.num << "," << q.axis; }); break;
    case kTfLiteBuiltinResizeNearestNeighbor:
      put<TfLiteResizeParams>(o, b, [&](auto& q) { o << q.align_corners << "," << q.half_pixel_centers; });
      break;
    default:
      break;  // ops without parameters, or whose parameters this plugin does not declare
  }
  return o.str();
}

// Data-movement ops (kernels/movement.cc), as case labels.
#define MOVEMENT_CASES                                                                                                 \
  case kTfLiteBuiltinPad: case kTfLiteBuiltinPadv2: case kTfLiteBuiltinMirrorPad: case kTfLiteBuiltinConcatenation:   \
  case kTfLiteBuiltinTranspose: case kTfLiteBuiltinSlice: case kTfLiteBuiltinStridedSlice: case kTfLiteBuiltinSplit:   \
  case kTfLiteBuiltinSplitV: case kTfLiteBuiltinUnpack: case kTfLiteBuiltinPack: case kTfLiteBuiltinGather:            \
  case kTfLiteBuiltinGatherNd: case kTfLiteBuiltinDepthToSpace: case kTfLiteBuiltinSpaceToDepth:                       \
  case kTfLiteBuiltinResizeNearestNeighbor: case kTfLiteBuiltinTile: case kTfLiteBuiltinBroadcastTo:                   \
  case kTfLiteBuiltinBatchToSpaceNd: case kTfLiteBuiltinSpaceToBatchNd: case kTfLiteBuiltinExpandDims:

bool has_secure_kernel(int code) {
  switch (code) {
    case kTfLiteBuiltinConv2d: case kTfLiteBuiltinDepthwiseConv2d: case kTfLiteBuiltinFullyConnected:
    case kTfLiteBuiltinAveragePool2d: case kTfLiteBuiltinMaxPool2d: case kTfLiteBuiltinMean:
    case kTfLiteBuiltinAdd: case kTfLiteBuiltinSoftmax: case kTfLiteBuiltinReshape: case kTfLiteBuiltinSqueeze:
    case kTfLiteBuiltinLogistic: case kTfLiteBuiltinTanh: case kTfLiteBuiltinHardSwish: case kTfLiteBuiltinGelu:
    case kTfLiteBuiltinLeakyRelu: case kTfLiteBuiltinRelu: case kTfLiteBuiltinRelu6: case kTfLiteBuiltinReluN1To1:
    case kTfLiteBuiltinRelu0To1: case kTfLiteBuiltinQuantize: case kTfLiteBuiltinPrelu:
      return true;
    // ---- data movement (kernels/movement.cc)
    MOVEMENT_CASES
      return true;
    // ---- broadcasting arithmetic and reductions (kernels/arith.cc, kernels/reduce.cc)
    case kTfLiteBuiltinSub: case kTfLiteBuiltinMul: case kTfLiteBuiltinSquaredDifference:
    case kTfLiteBuiltinMaximum: case kTfLiteBuiltinMinimum: case kTfLiteBuiltinReduceMax:
    case kTfLiteBuiltinReduceMin: case kTfLiteBuiltinSum: case kTfLiteBuiltinBatchMatmul: case kTfLiteBuiltinRsqrt:
      return true;
    // ---- resize, transposed convolution, arg max
    case kTfLiteBuiltinResizeBilinear: case kTfLiteBuiltinTransposeConv: case kTfLiteBuiltinArgMax:
    case kTfLiteBuiltinArgMin:
      return true;
    default:
      return false;
  }
}

template <class T>
static const T& builtin_params(const NodeView& n) {
  require(n.node->builtin_data != nullptr, std::string("missing ") + builtin_name(n.reg->builtin_code) + " parameters");
  return *static_cast<const T*>(n.node->builtin_data);
}

// Data movement (kernels/movement.cc): the secret operands, the public index tensors
// (read here, at build time) and the op's parameters.
static std::unique_ptr<Kernel> build_movement(const NodeView& n) {
  const int code = n.reg->builtin_code;
  const std::string op = builtin_name(code);
  MovementParams p;
  std::vector<TensorInfo> data, outs;
  for (int k = 0; k < n.node->outputs->size; ++k) outs.push_back(n.output(k));
  const auto scalar = [&](int k, const char* what) {
    const std::vector<int64_t> v = index_values(n.input(k), (op + ": " + what).c_str());
    require(v.size() == 1, op + ": " + what + " must be a single value");
    return static_cast<int>(v[0]);
  };
  // Ops whose data is input 0, followed by public index tensors.
  struct Layout {
    int code;
    Movement m;
    std::vector<const char*> index;
  };
  static const Layout layouts[] = {
      {kTfLiteBuiltinPad, Movement::kPad, {"paddings"}},
      {kTfLiteBuiltinPadv2, Movement::kPad, {"paddings"}},
      {kTfLiteBuiltinMirrorPad, Movement::kMirrorPad, {"paddings"}},
      {kTfLiteBuiltinTranspose, Movement::kTranspose, {"perm"}},
      {kTfLiteBuiltinSlice, Movement::kSlice, {"begin", "size"}},
      {kTfLiteBuiltinStridedSlice, Movement::kStridedSlice, {"begin", "end", "strides"}},
      {kTfLiteBuiltinSplitV, Movement::kSplit, {}},  // sizes: the outputs' shapes
      {kTfLiteBuiltinUnpack, Movement::kUnpack, {}},
      {kTfLiteBuiltinGather, Movement::kGather, {"indices"}},
      {kTfLiteBuiltinGatherNd, Movement::kGatherNd, {"indices"}},
      {kTfLiteBuiltinDepthToSpace, Movement::kDepthToSpace, {}},
      {kTfLiteBuiltinSpaceToDepth, Movement::kSpaceToDepth, {}},
      {kTfLiteBuiltinResizeNearestNeighbor, Movement::kResizeNearest, {"size"}},
      {kTfLiteBuiltinTile, Movement::kTile, {"multiples"}},
      {kTfLiteBuiltinBroadcastTo, Movement::kBroadcastTo, {"shape"}},
      {kTfLiteBuiltinBatchToSpaceNd, Movement::kBatchToSpace, {"block_shape", "crops"}},
      {kTfLiteBuiltinSpaceToBatchNd, Movement::kSpaceToBatch, {"block_shape", "paddings"}},
  };
  Movement m = Movement::kPad;
  for (const Layout& l : layouts)
    if (l.code == code) {
      m = l.m;
      data = {n.input(0)};
      for (size_t k = 0; k < l.index.size(); ++k) {
        const TensorInfo t = n.input(static_cast<int>(k) + 1);
        p.ints.push_back(index_values(t, (op + ": " + l.index[k]).c_str()));
        p.int_shapes.push_back(t.shape);
      }
    }
  switch (code) {
    case kTfLiteBuiltinPadv2:
      if (n.has_input(2)) {  // the pad value: an operand (a model constant)
        data.push_back(n.input(2));
        require(data.back().size() == 1, "PADV2: the pad value must be a single value");
      }
      break;
    case kTfLiteBuiltinMirrorPad: {
      const auto& q = builtin_params<TfLiteMirrorPaddingParams>(n);
      require(q.mode == kTfLiteMirrorPaddingReflect || q.mode == kTfLiteMirrorPaddingSymmetric,
              "MIRROR_PAD: unknown mode " + std::to_string(static_cast<int>(q.mode)));
      p.reflect = q.mode == kTfLiteMirrorPaddingReflect;
      break;
    }
    case kTfLiteBuiltinConcatenation:
    case kTfLiteBuiltinPack:  // every input is data
      if (code == kTfLiteBuiltinConcatenation) {
        const auto& q = builtin_params<TfLiteConcatenationParams>(n);
        require(q.activation == kTfLiteActNone,
                "CONCATENATION: a fused activation is not supported (TFLite's kernel refuses it too)");
        m = Movement::kConcatenation;
        p.axis = q.axis;
      } else {
        const auto& q = builtin_params<TfLitePackParams>(n);
        require(q.values_count == n.num_inputs(), "PACK: values_count differs from the number of inputs");
        m = Movement::kPack;
        p.axis = q.axis;
      }
      for (int k = 0; k < n.num_inputs(); ++k) data.push_back(n.input(k));
      break;
    case kTfLiteBuiltinStridedSlice: {
      const auto& q = builtin_params<TfLiteStridedSliceParams>(n);
      p.begin_mask = q.begin_mask;
      p.end_mask = q.end_mask;
      p.ellipsis_mask = q.ellipsis_mask;
      p.new_axis_mask = q.new_axis_mask;
      p.shrink_axis_mask = q.shrink_axis_mask;
      p.offset = q.offset;
      break;
    }
    case kTfLiteBuiltinSplit:  // inputs (axis, value)
      m = Movement::kSplit;
      p.axis = scalar(0, "axis");
      data = {n.input(1)};
      break;
    case kTfLiteBuiltinSplitV:  // inputs (value, size_splits, axis)
      p.axis = scalar(2, "axis");
      break;
    case kTfLiteBuiltinUnpack: {
      const auto& q = builtin_params<TfLiteUnpackParams>(n);
      require(q.num == static_cast<int>(outs.size()), "UNPACK: num differs from the number of outputs");
      p.axis = q.axis;
      break;
    }
    case kTfLiteBuiltinGather:
      p.axis = builtin_params<TfLiteGatherParams>(n).axis;
      p.batch_dims = builtin_params<TfLiteGatherParams>(n).batch_dims;
      break;
    case kTfLiteBuiltinDepthToSpace:
    case kTfLiteBuiltinSpaceToDepth:
      p.block_size = builtin_params<TfLiteDepthToSpaceParams>(n).block_size;
      break;
    case kTfLiteBuiltinResizeNearestNeighbor: {
      const auto& q = builtin_params<TfLiteResizeParams>(n);
      p.align_corners = q.align_corners;
      p.half_pixel_centers = q.half_pixel_centers;
      break;
    }
    case kTfLiteBuiltinExpandDims:  // the same values under a new shape
      scalar(1, "axis");
      return make_reshape(n.input(0), n.output(0));
    default:
      break;
  }
  return make_movement(m, p, data, outs);
}

std::unique_ptr<Kernel> build_kernel(const NodeView& n) {
  const int code = n.reg->builtin_code;
  switch (code) {
    case kTfLiteBuiltinConv2d: {
      auto* b = static_cast<const TfLiteConvParams*>(n.node->builtin_data);
      require(b, "missing CONV_2D parameters");
      check_act(b->activation);
      ConvParams p = conv_params(*b);
      TensorInfo bias;
      if (n.has_input(2)) bias = n.input(2);
      return make_conv2d(p, n.input(0), n.input(1), n.has_input(2) ? &bias : nullptr, n.output(0));
    }
    case kTfLiteBuiltinDepthwiseConv2d: {
      auto* b = static_cast<const TfLiteDepthwiseConvParams*>(n.node->builtin_data);
      require(b, "missing DEPTHWISE_CONV_2D parameters");
      check_act(b->activation);
      ConvParams p = conv_params(*b);
      TensorInfo in = n.input(0), filter = n.input(1);
      // depth_multiplier from the shapes (the stored field can be stale)
      require(in.shape.size() == 4 && filter.shape.size() == 4 && in.shape[3] > 0,
              "DEPTHWISE_CONV_2D: tensors must be 4-D");
      p.depth_multiplier = static_cast<int>(filter.shape[3] / in.shape[3]);
      TensorInfo bias;
      if (n.has_input(2)) bias = n.input(2);
      return make_depthwise_conv2d(p, in, filter, n.has_input(2) ? &bias : nullptr, n.output(0));
    }
    case kTfLiteBuiltinFullyConnected: {
      auto* b = static_cast<const TfLiteFullyConnectedParams*>(n.node->builtin_data);
      require(b, "missing FULLY_CONNECTED parameters");
      check_act(b->activation);
      require(b->weights_format == kTfLiteFullyConnectedWeightsFormatDefault,
              "FULLY_CONNECTED: shuffled weight format is not supported");
      FullyConnectedParams p;
      p.act = map_act(b->activation);
      p.keep_num_dims = b->keep_num_dims;
      p.single_rounding = n.fc_single_rounding;
      TensorInfo bias;
      if (n.has_input(2)) bias = n.input(2);
      return make_fully_connected(p, n.input(0), n.input(1), n.has_input(2) ? &bias : nullptr, n.output(0));
    }
    case kTfLiteBuiltinAveragePool2d:
    case kTfLiteBuiltinMaxPool2d: {
      auto* b = static_cast<const TfLitePoolParams*>(n.node->builtin_data);
      require(b, "missing pooling parameters");
      check_act(b->activation);
      PoolParams p;
      p.stride_h = b->stride_height; p.stride_w = b->stride_width;
      p.filter_h = b->filter_height; p.filter_w = b->filter_width;
      p.same = padding_same(b->padding);
      p.act = map_act(b->activation);
      return code == kTfLiteBuiltinAveragePool2d ? make_average_pool2d(p, n.input(0), n.output(0))
                                                 : make_max_pool2d(p, n.input(0), n.output(0));
    }
    case kTfLiteBuiltinAdd:
      return make_add(fused_activation<TfLiteAddParams>(n, "ADD"), n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinReshape:
    case kTfLiteBuiltinSqueeze:
      // TFLite reads RESHAPE's new shape from an int32 second input when there is one.
      require(code != kTfLiteBuiltinReshape || !n.has_input(1) || n.input(1).type == DType::kInt32,
              "RESHAPE: the new shape (input 1) must be an int32 tensor");
      return make_reshape(n.input(0), n.output(0));
    case kTfLiteBuiltinMean:
      return make_mean(reduce_axes(n, "MEAN"), n.input(0), n.output(0));
    case kTfLiteBuiltinSoftmax: {
      auto* b = static_cast<const TfLiteSoftmaxParams*>(n.node->builtin_data);
      require(b, "missing SOFTMAX parameters");
      return make_softmax(b->beta, n.input(0), n.output(0));
    }
    case kTfLiteBuiltinLeakyRelu: {
      auto* b = static_cast<const TfLiteLeakyReluParams*>(n.node->builtin_data);
      require(b, "missing LEAKY_RELU parameters");
      return make_elementwise(Elementwise::kLeakyRelu, b->alpha, n.input(0), n.output(0));
    }
    case kTfLiteBuiltinPrelu:
      return make_prelu(n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinGelu: {
      auto* b = static_cast<const TfLiteGeluParams*>(n.node->builtin_data);
      const bool approximate = b && b->approximate;  // no parameters: GELU's default (exact)
      return make_elementwise(approximate ? Elementwise::kGeluApprox : Elementwise::kGelu, 0.f, n.input(0), n.output(0));
    }
    case kTfLiteBuiltinLogistic: case kTfLiteBuiltinTanh: case kTfLiteBuiltinHardSwish: case kTfLiteBuiltinRelu:
    case kTfLiteBuiltinRelu6: case kTfLiteBuiltinReluN1To1: case kTfLiteBuiltinRelu0To1:
    case kTfLiteBuiltinQuantize: {  // QUANTIZE here: int8 / uint8 -> int8 / uint8 inside the graph
      static const std::pair<int, Elementwise> ops[] = {
          {kTfLiteBuiltinLogistic, Elementwise::kLogistic}, {kTfLiteBuiltinTanh, Elementwise::kTanh},
          {kTfLiteBuiltinHardSwish, Elementwise::kHardSwish}, {kTfLiteBuiltinRelu, Elementwise::kRelu},
          {kTfLiteBuiltinRelu6, Elementwise::kRelu6}, {kTfLiteBuiltinReluN1To1, Elementwise::kReluN1To1},
          {kTfLiteBuiltinRelu0To1, Elementwise::kRelu0To1}, {kTfLiteBuiltinQuantize, Elementwise::kQuantize}};
      for (auto [c, e] : ops)
        if (c == code) return make_elementwise(e, 0.f, n.input(0), n.output(0));
      return nullptr;
    }
    // ---- data movement (kernels/movement.cc)
    MOVEMENT_CASES
      return build_movement(n);
    // ---- broadcasting arithmetic and reductions (kernels/arith.cc, kernels/reduce.cc)
    case kTfLiteBuiltinSub:
      return make_add_sub(true, fused_activation<TfLiteSubParams>(n, "SUB"), n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinMul:
      return make_mul(fused_activation<TfLiteMulParams>(n, "MUL"), n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinSquaredDifference:
      return make_squared_difference(n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinMaximum:
    case kTfLiteBuiltinMinimum:
      return make_max_min(code == kTfLiteBuiltinMaximum, n.input(0), n.input(1), n.output(0));
    case kTfLiteBuiltinReduceMax:
    case kTfLiteBuiltinReduceMin:
      return make_reduce_max_min(code == kTfLiteBuiltinReduceMax, reduce_axes(n, builtin_name(code)), n.input(0),
                                 n.output(0));
    case kTfLiteBuiltinRsqrt:
      return make_rsqrt(n.input(0), n.output(0));
    case kTfLiteBuiltinSum:
      return make_sum(reduce_axes(n, "SUM"), n.input(0), n.output(0));
    case kTfLiteBuiltinBatchMatmul: {
      auto* b = static_cast<const TfLiteBatchMatMulParams*>(n.node->builtin_data);
      require(b, "missing BATCH_MATMUL parameters");
      return make_batch_matmul(b->adj_x, b->adj_y, n.input(0), n.input(1), n.output(0));
    }
    // ---- resize, transposed convolution, arg max
    case kTfLiteBuiltinResizeBilinear: {
      auto* b = static_cast<const TfLiteResizeParams*>(n.node->builtin_data);
      require(b, "missing RESIZE_BILINEAR parameters");
      TensorInfo size;
      if (n.has_input(1)) size = n.input(1);
      return make_resize_bilinear(b->align_corners, b->half_pixel_centers, n.input(0),
                                  n.has_input(1) ? &size : nullptr, n.output(0));
    }
    case kTfLiteBuiltinTransposeConv: {
      auto* b = static_cast<const TfLiteTransposeConvParams*>(n.node->builtin_data);
      require(b, "missing TRANSPOSE_CONV parameters");
      TransposeConvParams p;
      p.stride_h = b->stride_height;
      p.stride_w = b->stride_width;
      p.same = padding_same(b->padding);
      if (n.reg->version >= 4) {  // the fused activation exists from op version 4 on
        check_act(b->activation);
        p.act = map_act(b->activation);
      }
      TensorInfo bias;
      if (n.has_input(3)) bias = n.input(3);
      return make_transpose_conv(p, n.input(0), n.input(1), n.input(2), n.has_input(3) ? &bias : nullptr,
                                 n.output(0));
    }
    case kTfLiteBuiltinArgMax:
    case kTfLiteBuiltinArgMin:
      return make_arg_min_max(code == kTfLiteBuiltinArgMin, n.input(0), n.input(1), n.output(0));
    default:
      return nullptr;
  }
}

}  // namespace tflite_mpc
