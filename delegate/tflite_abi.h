/*
 * tflite_abi.h -- tflite-mpc's own declarations of the TensorFlow Lite
 * delegate C ABI.
 *
 * Why this file exists
 * --------------------
 * The tensorflow / ai-edge-litert pip wheels ship the TFLite runtime inside
 * their Python extension modules but do not ship the C headers.  Our delegate
 * plugin is loaded with dlopen() by tf.lite.experimental.load_delegate() /
 * ai_edge_litert.interpreter.load_delegate(), talks to the interpreter only
 * through the structs below, and links against NO TfLite symbol.
 *
 * These declarations were written for tflite-mpc.  They reproduce the memory
 * layout of the structs in TFLite's lite/core/c/common.h,
 * lite/core/c/c_api_types.h, lite/core/c/builtin_op_data.h and the numeric
 * values of lite/builtin_ops.h (which mirror schema.fbs).  Every size/offset
 * the delegate relies on is pinned with a static_assert at the bottom; the
 * values were checked against the real runtimes with the probe plugin
 * described in delegate/ABI_NOTES.md (tensorflow 2.21.0 and ai-edge-litert
 * 2.3.0, Linux x86-64).
 *
 * Rules for the code that uses this header
 * ----------------------------------------
 *  - Never call TfLite library functions (TfLiteIntArrayCreate, ...): the
 *    plugin has nothing to link them against.  Allocate arrays handed over to
 *    the runtime with malloc() (the runtime releases them with free()).
 *  - context->GetTensor is NULL in the Python runtimes: index
 *    context->tensors[i] directly.
 *  - TfLiteRegistration is passed BY VALUE to
 *    ReplaceNodeSubsetsWithDelegateKernels: zero-initialise the whole struct
 *    (all 88 bytes) before filling in the callbacks.
 *  - Only append to these structs if TFLite appends; never reorder.
 *
 * The header is plain C (C99) and C++17 compatible; no namespace is used so
 * that the names match the ones used in TFLite documentation.
 */
#ifndef TFLITE_MPC_DELEGATE_TFLITE_ABI_H_
#define TFLITE_MPC_DELEGATE_TFLITE_ABI_H_

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Status and element types                                                 */
/* ======================================================================== */

/* Return code of every runtime callback and of every delegate callback. */
typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,                  /* generic runtime error */
  kTfLiteDelegateError = 2,          /* error raised by a delegate; lets the
                                        runtime undo the delegation */
  kTfLiteApplicationError = 3,       /* delegate/runtime incompatibility */
  kTfLiteDelegateDataNotFound = 4,   /* delegate serialization */
  kTfLiteDelegateDataWriteError = 5, /* delegate serialization */
  kTfLiteDelegateDataReadError = 6,  /* delegate serialization */
  kTfLiteUnresolvedOps = 7,          /* op not available in the runtime */
  kTfLiteCancelled = 8               /* invocation cancelled by the user */
} TfLiteStatus;

/* Element type of a tensor (TfLiteTensor::type).
 * NOTE: this is NOT the same numbering as the flatbuffer schema's
 * TensorType (where FLOAT32 = 0, INT8 = 9 ...): kTfLiteFloat32 is 1. */
typedef enum TfLiteType {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10,
  kTfLiteFloat64 = 11,
  kTfLiteComplex128 = 12,
  kTfLiteUInt64 = 13,
  kTfLiteResource = 14,
  kTfLiteVariant = 15,
  kTfLiteUInt32 = 16,
  kTfLiteUInt16 = 17,
  kTfLiteInt4 = 18,
  kTfLiteBFloat16 = 19,
  kTfLiteInt2 = 20,            /* newer runtimes only */
  kTfLiteUInt4 = 21,           /* newer runtimes only */
  kTfLiteFloat8E4M3FN = 22,    /* newer runtimes only */
  kTfLiteFloat8E5M2 = 23       /* newer runtimes only */
} TfLiteType;

/* A tensor index of -1 in a node's input list means "optional input absent"
 * (e.g. a CONV_2D without bias). */
#define kTfLiteOptionalTensor (-1)

/* Buffer handles are delegate-owned ids; -1 means "none". */
typedef int TfLiteBufferHandle;
enum { kTfLiteNullBufferHandle = -1 };

/* ======================================================================== */
/* Arrays                                                                   */
/* ======================================================================== */

/* Length-prefixed int array used for shapes, node input/output lists and the
 * execution plan.  Allocated as one block of (1 + size) ints with malloc();
 * the runtime frees arrays it takes ownership of with free(). */
typedef struct TfLiteIntArray {
  int size;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
  int data[]; /* flexible array member: `size` elements follow */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
} TfLiteIntArray;

/* Length-prefixed float array (per-channel quantization scales).
 * Layout in TF 2.14-2.21 / ai-edge-litert 2.3: {int size; float data[];}.
 * (TFLite master later switched to {float* data; int size; bool owning;} --
 * re-verify with the probe before supporting a newer runtime.) */
typedef struct TfLiteFloatArray {
  int size;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
  float data[];
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
} TfLiteFloatArray;

/* ======================================================================== */
/* Quantization                                                             */
/* ======================================================================== */

/* Legacy per-tensor parameters (TfLiteTensor::params).  For per-channel
 * tensors this only holds the first channel's values; prefer
 * TfLiteTensor::quantization.  real = scale * (q - zero_point). */
typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

#ifdef __cplusplus
typedef enum TfLiteQuantizationType : int {
#else
typedef enum TfLiteQuantizationType {
#endif
  kTfLiteNoQuantization = 0,
  kTfLiteAffineQuantization = 1,     /* params -> TfLiteAffineQuantization */
  kTfLiteBlockwiseQuantization = 2,  /* newer runtimes */
  kTfLiteMultiAxisQuantization = 3   /* newer runtimes */
} TfLiteQuantizationType;

/* Tagged pointer: `params` is interpreted according to `type`. */
typedef struct TfLiteQuantization {
  TfLiteQuantizationType type;
  void* params;
} TfLiteQuantization;

/* Affine (optionally per-channel) quantization.  scale->size ==
 * zero_point->size == 1 for per-tensor, == dims[quantized_dimension] for
 * per-channel (conv filters: dimension 0 = output channels, depthwise
 * filters: dimension 3). */
typedef struct TfLiteAffineQuantization {
  TfLiteFloatArray* scale;
  TfLiteIntArray* zero_point;
  int32_t quantized_dimension;
} TfLiteAffineQuantization;

/* ======================================================================== */
/* Tensors                                                                  */
/* ======================================================================== */

/* Where a tensor's buffer comes from. */
typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,           /* no buffer */
  kTfLiteMmapRo = 1,            /* read-only constant from the model file
                                   (weights, biases, shape operands) */
  kTfLiteArenaRw = 2,           /* planner arena: activations, I/O */
  kTfLiteArenaRwPersistent = 3, /* arena, kept across invocations */
  kTfLiteDynamic = 4,           /* heap, resized at eval time */
  kTfLitePersistentRo = 5,      /* computed in Prepare, then constant */
  kTfLiteCustom = 6,            /* user-provided buffer */
  kTfLiteVariantObject = 7,     /* type-erased C++ object */
  kTfLiteNonCpu = 8             /* newer runtimes: not CPU accessible */
} TfLiteAllocationType;

/* Union of typed views of a tensor's buffer; all members alias `data`. */
typedef union TfLitePtrUnion {
  int32_t* i32;
  uint32_t* u32;
  int64_t* i64;
  uint64_t* u64;
  float* f;
  uint16_t* f16;   /* TfLiteFloat16 in TFLite; same storage */
  uint16_t* bf16;  /* TfLiteBFloat16 in TFLite; same storage */
  double* f64;
  char* raw;
  const char* raw_const;
  uint8_t* uint8;
  bool* b;
  int16_t* i16;
  uint16_t* ui16;
  void* c64;       /* complex64 */
  void* c128;      /* complex128 */
  int8_t* int8;
  void* data;
} TfLitePtrUnion;

struct TfLiteDelegate;
struct TfLiteContext;
struct TfLiteRegistration;
struct TfLiteOpaqueDelegateBuilder; /* opaque to us */
struct TfLiteSparsity;              /* opaque to us */
struct TfLiteOperator;              /* opaque to us ("registration_external") */
struct TfLiteAsyncKernel;           /* opaque to us */
struct TfLiteEvalTensor;            /* opaque to us (TF Micro) */

/* One tensor of the graph.  The runtime owns the array
 * context->tensors[0 .. tensors_size). */
typedef struct TfLiteTensor {
  TfLiteType type;                     /* element type */
  TfLitePtrUnion data;                 /* buffer (may be NULL before
                                          AllocateTensors) */
  TfLiteIntArray* dims;                /* current shape */
  TfLiteQuantizationParams params;     /* legacy per-tensor quantization */
  TfLiteAllocationType allocation_type;
  size_t bytes;                        /* buffer size in bytes */
  const void* allocation;              /* runtime-internal */
  const char* name;                    /* NUL-terminated tensor name */
  struct TfLiteDelegate* delegate;     /* owner of buffer_handle */
  TfLiteBufferHandle buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;     /* full quantization description */
  struct TfLiteSparsity* sparsity;     /* NULL for dense tensors */
  const TfLiteIntArray* dims_signature;/* shape with -1 for unknown dims;
                                          NULL/empty when fully static */
} TfLiteTensor;

/* ======================================================================== */
/* Nodes and registrations                                                  */
/* ======================================================================== */

/* One operation instance.  For a builtin op, builtin_data points at the
 * op-specific parameter struct (TfLiteConvParams, ...).  For a delegate
 * kernel node, builtin_data points at the TfLiteDelegateParams that was
 * passed to init and user_data holds whatever init returned. */
typedef struct TfLiteNode {
  TfLiteIntArray* inputs;       /* tensor indices (may contain -1) */
  TfLiteIntArray* outputs;      /* tensor indices */
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;              /* value returned by registration->init */
  void* builtin_data;           /* op parameters, see below */
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate; /* non-NULL for delegate kernel nodes */
  bool might_have_side_effect;
} TfLiteNode;

/* The callbacks implementing an op or a delegate kernel.  Passed BY VALUE to
 * ReplaceNodeSubsetsWithDelegateKernels; zero the whole struct first. */
typedef struct TfLiteRegistration {
  /* Called once per node.  For a delegate kernel `buffer` is really a
   * `const TfLiteDelegateParams*` and `length` is 0.  The return value is
   * stored in node->user_data. */
  void* (*init)(struct TfLiteContext* context, const char* buffer,
                size_t length);
  /* Releases what init returned. */
  void (*free)(struct TfLiteContext* context, void* buffer);
  /* Called after (re)allocation; may resize outputs. */
  TfLiteStatus (*prepare)(struct TfLiteContext* context, TfLiteNode* node);
  /* Computes the node's outputs. */
  TfLiteStatus (*invoke)(struct TfLiteContext* context, TfLiteNode* node);
  /* Optional label used by profilers. */
  const char* (*profiling_string)(const struct TfLiteContext* context,
                                  const TfLiteNode* node);
  int32_t builtin_code;         /* kTfLiteBuiltin* value; for delegate kernels
                                   set kTfLiteBuiltinDelegate (51) */
  const char* custom_name;      /* op name for custom ops / delegate kernels
                                   (shown in error messages); NULL for
                                   builtins */
  int version;                  /* op version from the model */
  struct TfLiteOperator* registration_external; /* keep NULL */
  struct TfLiteAsyncKernel* (*async_kernel)(struct TfLiteContext* context,
                                            TfLiteNode* node); /* keep NULL */
  uint64_t inplace_operator;    /* bitmask; keep 0 (kTfLiteInplaceOpNone) */
} TfLiteRegistration;

/* ======================================================================== */
/* Context                                                                  */
/* ======================================================================== */

typedef enum TfLiteExternalContextType {
  kTfLiteEigenContext = 0,
  kTfLiteGemmLowpContext = 1,
  kTfLiteEdgeTpuContext = 2,
  kTfLiteCpuBackendContext = 3,
  kTfLiteLiteRtBufferContext = 4, /* newer runtimes */
  kTfLiteMaxExternalContexts = 5
} TfLiteExternalContextType;

typedef struct TfLiteExternalContext {
  TfLiteExternalContextType type;
  TfLiteStatus (*Refresh)(struct TfLiteContext* context);
} TfLiteExternalContext;

struct TfLiteDelegateParams;

/* The interpreter's view of one subgraph, handed to delegate Prepare and to
 * kernel callbacks.  Entries marked [NULL] were observed to be NULL in the
 * Python runtimes -- check before calling anything not listed as used. */
typedef struct TfLiteContext {
  size_t tensors_size;            /* number of entries in `tensors` */

  /* Current execution plan (node indices in run order).  The array is owned
   * by the runtime and invalidated by the next call. */
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context,
                                   TfLiteIntArray** execution_plan);

  TfLiteTensor* tensors;          /* all tensors of the subgraph */
  void* impl_;                    /* runtime-internal */

  /* Resize `tensor` to `new_size`.  TAKES OWNERSHIP of new_size (the runtime
   * free()s it): allocate it with malloc(sizeof(int) * (1 + n)). */
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext* context,
                               TfLiteTensor* tensor, TfLiteIntArray* new_size);

  /* printf-style error report; ends up in the Python exception text of the
   * call that failed (see ABI_NOTES.md). */
  void (*ReportError)(struct TfLiteContext* context, const char* msg, ...);

  /* Append tensors; *first_new_tensor_index receives the first new index.
   * May reallocate `tensors`. */
  TfLiteStatus (*AddTensors)(struct TfLiteContext* context, int tensors_to_add,
                             int* first_new_tensor_index);

  /* Node + registration for a node index (valid during delegate Prepare and
   * delegate kernel init). */
  TfLiteStatus (*GetNodeAndRegistration)(
      struct TfLiteContext* context, int node_index, TfLiteNode** node,
      struct TfLiteRegistration** registration);

  /* Replace the given nodes by delegate kernels.  The runtime splits the set
   * into connected partitions and creates one kernel node (calling
   * registration.init with a TfLiteDelegateParams*) per partition.  Does not
   * take ownership of nodes_to_replace.  NOTE: registration by value. */
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext* context, struct TfLiteRegistration registration,
      const TfLiteIntArray* nodes_to_replace, struct TfLiteDelegate* delegate);

  int recommended_num_threads;

  TfLiteExternalContext* (*GetExternalContext)(struct TfLiteContext* context,
                                               TfLiteExternalContextType type);
  void (*SetExternalContext)(struct TfLiteContext* context,
                             TfLiteExternalContextType type,
                             TfLiteExternalContext* external_context);

  bool allow_fp32_relax_to_fp16;
  void* profiler;

  /* [NULL in the Python runtimes] heap buffer living as long as the
   * interpreter (TF Micro style). */
  void* (*AllocatePersistentBuffer)(struct TfLiteContext* ctx, size_t bytes);
  /* Buffer freed after the current invoke (invoke only). */
  TfLiteStatus (*AllocateBufferForEval)(struct TfLiteContext* ctx,
                                        size_t bytes, void** ptr);
  /* Arena scratch buffers (prepare: request, invoke: get). */
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext* ctx,
                                              size_t bytes, int* buffer_idx);
  void* (*GetScratchBuffer)(struct TfLiteContext* ctx, int buffer_idx);

  /* [NULL in the Python runtimes] like ResizeTensor but copies `shape`.
   * Use ResizeTensor with a malloc()'d array instead. */
  TfLiteStatus (*ResizeTensorExplicit)(struct TfLiteContext* ctx,
                                       TfLiteTensor* tensor, int dims,
                                       const int* shape);

  /* Dry run of the partitioning ReplaceNodeSubsetsWithDelegateKernels would
   * do.  The array is owned by the context. */
  TfLiteStatus (*PreviewDelegatePartitioning)(
      struct TfLiteContext* context, const TfLiteIntArray* nodes_to_replace,
      struct TfLiteDelegateParams** partition_params_array,
      int* num_partitions);

  /* [NULL in the Python runtimes] use tensors[idx] instead. */
  TfLiteTensor* (*GetTensor)(const struct TfLiteContext* context,
                             int tensor_idx);
  /* [NULL in the Python runtimes] TF Micro only. */
  struct TfLiteEvalTensor* (*GetEvalTensor)(const struct TfLiteContext* context,
                                            int tensor_idx);

  /* Named metadata buffer from the model flatbuffer. */
  TfLiteStatus (*GetModelMetadata)(const struct TfLiteContext* context,
                                   const char* name, const char** ptr,
                                   size_t* bytes);

  /* Control-flow subgraph access for delegates. */
  TfLiteStatus (*AcquireSubgraphContext)(
      struct TfLiteContext* context, int subgraph_index,
      struct TfLiteContext** acquired_context);
  TfLiteStatus (*ReleaseSubgraphContext)(struct TfLiteContext* context,
                                         int subgraph_index);
  /* (On _WIN32 TFLite appends two more members; not relevant on Linux.) */
} TfLiteContext;

/* ======================================================================== */
/* Delegates                                                                */
/* ======================================================================== */

/* What registration.init receives (as `const char* buffer`, length 0) for
 * each partition created by ReplaceNodeSubsetsWithDelegateKernels.  The
 * arrays are owned by the runtime and stay valid for the node's lifetime
 * (the struct is also stored in the delegate node's builtin_data). */
typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace; /* original node indices, plan order */
  TfLiteIntArray* input_tensors;    /* partition inputs (incl. constants) */
  TfLiteIntArray* output_tensors;   /* partition outputs */
} TfLiteDelegateParams;

/* Bit flags for TfLiteDelegate::flags.
 * Keras models exported with an unknown batch size contain dynamic tensors;
 * without kTfLiteDelegateFlagsAllowDynamicTensors the runtime refuses the
 * delegate before Prepare is called (Python: RuntimeError with an empty
 * message).  AllowDynamicTensors | RequirePropagatedShapes (= 3) makes the
 * runtime propagate shapes so delegate kernels see resized outputs. */
typedef enum TfLiteDelegateFlags {
  kTfLiteDelegateFlagsNone = 0,
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
  kTfLiteDelegateFlagsRequirePropagatedShapes = 2,
  kTfLiteDelegateFlagsPerOperatorProfiling = 4,
  kTfLiteDelegateFlagsHintFullyDelegatedToSingleDelegate = 8
} TfLiteDelegateFlags;

/* The object returned by tflite_plugin_create_delegate.  Owned by the plugin;
 * freed by tflite_plugin_destroy_delegate. */
typedef struct TfLiteDelegate {
  void* data_;  /* plugin-private state */

  /* Called from Interpreter construction (ModifyGraphWithDelegate).  Inspect
   * the graph and call ReplaceNodeSubsetsWithDelegateKernels.  Return
   * kTfLiteDelegateError (not kTfLiteError) for recoverable failures. */
  TfLiteStatus (*Prepare)(struct TfLiteContext* context,
                          struct TfLiteDelegate* delegate);

  /* Buffer-handle support; may all be NULL for a CPU delegate. */
  TfLiteStatus (*CopyFromBufferHandle)(struct TfLiteContext* context,
                                       struct TfLiteDelegate* delegate,
                                       TfLiteBufferHandle buffer_handle,
                                       TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(struct TfLiteContext* context,
                                     struct TfLiteDelegate* delegate,
                                     TfLiteBufferHandle buffer_handle,
                                     TfLiteTensor* tensor);
  void (*FreeBufferHandle)(struct TfLiteContext* context,
                           struct TfLiteDelegate* delegate,
                           TfLiteBufferHandle* handle);

  int64_t flags;  /* TfLiteDelegateFlags bitmask (see above) */

  /* Must be NULL for a classic (non-opaque) delegate, otherwise the runtime
   * ignores Prepare above. */
  struct TfLiteOpaqueDelegateBuilder* opaque_delegate_builder;
} TfLiteDelegate;

/* ======================================================================== */
/* Builtin operator codes (TfLiteRegistration::builtin_code)                 */
/* Values from schema.fbs BuiltinOperator; cross-checked against            */
/* tensorflow/lite/python/schema_py_generated.py of TF 2.21 and             */
/* ai_edge_litert 2.3.                                                      */
/* ======================================================================== */
typedef enum TfLiteBuiltinOperator {
  kTfLiteBuiltinAdd = 0,
  kTfLiteBuiltinAveragePool2d = 1,
  kTfLiteBuiltinConcatenation = 2,
  kTfLiteBuiltinConv2d = 3,
  kTfLiteBuiltinDepthwiseConv2d = 4,
  kTfLiteBuiltinDepthToSpace = 5,
  kTfLiteBuiltinDequantize = 6,
  kTfLiteBuiltinFloor = 8,
  kTfLiteBuiltinFullyConnected = 9,
  kTfLiteBuiltinL2Normalization = 11,
  kTfLiteBuiltinLogistic = 14,
  kTfLiteBuiltinMaxPool2d = 17,
  kTfLiteBuiltinMul = 18,
  kTfLiteBuiltinRelu = 19,
  kTfLiteBuiltinReluN1To1 = 20,
  kTfLiteBuiltinRelu6 = 21,
  kTfLiteBuiltinReshape = 22,
  kTfLiteBuiltinResizeBilinear = 23,
  kTfLiteBuiltinSoftmax = 25,
  kTfLiteBuiltinSpaceToDepth = 26,
  kTfLiteBuiltinTanh = 28,
  kTfLiteBuiltinCustom = 32,
  kTfLiteBuiltinPad = 34,
  kTfLiteBuiltinGather = 36,
  kTfLiteBuiltinBatchToSpaceNd = 37,
  kTfLiteBuiltinSpaceToBatchNd = 38,
  kTfLiteBuiltinTranspose = 39,
  kTfLiteBuiltinMean = 40,
  kTfLiteBuiltinSub = 41,
  kTfLiteBuiltinDiv = 42,
  kTfLiteBuiltinSqueeze = 43,
  kTfLiteBuiltinStridedSlice = 45,
  kTfLiteBuiltinSplit = 49,
  kTfLiteBuiltinLogSoftmax = 50,
  kTfLiteBuiltinDelegate = 51,
  kTfLiteBuiltinCast = 53,
  kTfLiteBuiltinPrelu = 54,
  kTfLiteBuiltinMaximum = 55,
  kTfLiteBuiltinArgMax = 56,
  kTfLiteBuiltinMinimum = 57,
  kTfLiteBuiltinPadv2 = 60,
  kTfLiteBuiltinSlice = 65,
  kTfLiteBuiltinTransposeConv = 67,
  kTfLiteBuiltinExpandDims = 70,
  kTfLiteBuiltinSum = 74,
  kTfLiteBuiltinRsqrt = 76,
  kTfLiteBuiltinShape = 77,
  kTfLiteBuiltinArgMin = 79,
  kTfLiteBuiltinReduceMax = 82,
  kTfLiteBuiltinPack = 83,
  kTfLiteBuiltinUnpack = 88,
  kTfLiteBuiltinReduceMin = 89,
  kTfLiteBuiltinFill = 94,
  kTfLiteBuiltinResizeNearestNeighbor = 97,
  kTfLiteBuiltinLeakyRelu = 98,
  kTfLiteBuiltinSquaredDifference = 99,
  kTfLiteBuiltinMirrorPad = 100,
  kTfLiteBuiltinAbs = 101,
  kTfLiteBuiltinSplitV = 102,
  kTfLiteBuiltinElu = 111,
  kTfLiteBuiltinQuantize = 114,
  kTfLiteBuiltinHardSwish = 117,
  kTfLiteBuiltinSelectV2 = 123,
  kTfLiteBuiltinBatchMatmul = 126,
  kTfLiteBuiltinBroadcastTo = 130,
  kTfLiteBuiltinGelu = 150,
  kTfLiteBuiltinRelu0To1 = 152,
  /* data movement (kernels/movement.cc) */
  kTfLiteBuiltinTile = 69,
  kTfLiteBuiltinGatherNd = 107
} TfLiteBuiltinOperator;

/* ======================================================================== */
/* builtin_data structs (TfLiteNode::builtin_data of builtin ops)           */
/* ======================================================================== */

#define TFLITE_ABI_RESHAPE_MAX_DIMS 8
#define TFLITE_ABI_SQUEEZE_MAX_DIMS 8

typedef enum TfLitePadding {
  kTfLitePaddingUnknown = 0,
  kTfLitePaddingSame = 1,
  kTfLitePaddingValid = 2
} TfLitePadding;

/* Explicit padding amounts (only stored by some kernels; the pool params
 * carry a `computed` copy that the CPU kernel fills during its Prepare). */
typedef struct TfLitePaddingValues {
  int width;
  int height;
  int width_offset;   /* extra padding on the right (odd total) */
  int height_offset;  /* extra padding on the bottom (odd total) */
} TfLitePaddingValues;

typedef enum TfLiteFusedActivation {
  kTfLiteActNone = 0,
  kTfLiteActRelu = 1,
  kTfLiteActReluN1To1 = 2, /* clamp to [-1, 1] */
  kTfLiteActRelu6 = 3,     /* clamp to [0, 6] */
  kTfLiteActTanh = 4,
  kTfLiteActSignBit = 5,
  kTfLiteActSigmoid = 6
} TfLiteFusedActivation;

/* CONV_2D. Filter layout [out_c, kh, kw, in_c]; bias int32 [out_c]. */
typedef struct TfLiteConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  TfLiteFusedActivation activation;
  int dilation_width_factor;    /* op version >= 2, else 1 */
  int dilation_height_factor;
  TfLiteType quantized_bias_type; /* op version >= 7; do not rely on it */
} TfLiteConvParams;

/* DEPTHWISE_CONV_2D. Filter layout [1, kh, kw, in_c * depth_multiplier]. */
typedef struct TfLiteDepthwiseConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int depth_multiplier;         /* redundant with shapes; may be stale */
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
} TfLiteDepthwiseConvParams;

/* AVERAGE_POOL_2D, MAX_POOL_2D (and L2_POOL_2D). */
typedef struct TfLitePoolParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int filter_width;
  int filter_height;
  TfLiteFusedActivation activation;
  struct {
    TfLitePaddingValues padding; /* filled by the CPU kernel's Prepare */
  } computed;
} TfLitePoolParams;

typedef enum TfLiteFullyConnectedWeightsFormat {
  kTfLiteFullyConnectedWeightsFormatDefault = 0,
  kTfLiteFullyConnectedWeightsFormatShuffled4x16Int8 = 1
} TfLiteFullyConnectedWeightsFormat;

/* FULLY_CONNECTED. Weights [out, in]; bias int32 [out]. */
typedef struct TfLiteFullyConnectedParams {
  TfLiteFusedActivation activation;
  TfLiteFullyConnectedWeightsFormat weights_format;
  bool keep_num_dims;            /* output keeps input rank */
  bool asymmetric_quantize_inputs;
  TfLiteType quantized_bias_type; /* op version >= 10; do not rely on it */
} TfLiteFullyConnectedParams;

/* SOFTMAX */
typedef struct TfLiteSoftmaxParams {
  float beta;
} TfLiteSoftmaxParams;

/* CONCATENATION */
typedef struct TfLiteConcatenationParams {
  int axis;                      /* may be negative */
  TfLiteFusedActivation activation;
} TfLiteConcatenationParams;

/* ADD */
typedef struct TfLiteAddParams {
  TfLiteFusedActivation activation;
  bool pot_scale_int16;
} TfLiteAddParams;

/* SUB */
typedef struct TfLiteSubParams {
  TfLiteFusedActivation activation;
  bool pot_scale_int16;
} TfLiteSubParams;

/* MUL */
typedef struct TfLiteMulParams {
  TfLiteFusedActivation activation;
} TfLiteMulParams;

/* RESHAPE.  Legacy: the target shape normally comes from input 1 (a
 * constant int32 tensor); these fields are only filled for old models. */
typedef struct TfLiteReshapeParams {
  int32_t shape[TFLITE_ABI_RESHAPE_MAX_DIMS];
  int num_dimensions;
} TfLiteReshapeParams;

/* MEAN, SUM, REDUCE_MAX, ... (axes come from input 1). */
typedef struct TfLiteReducerParams {
  bool keep_dims;
} TfLiteReducerParams;

/* SQUEEZE */
typedef struct TfLiteSqueezeParams {
  int32_t squeeze_dims[TFLITE_ABI_SQUEEZE_MAX_DIMS];
  int num_squeeze_dims;
} TfLiteSqueezeParams;

/* STRIDED_SLICE (begin/end/strides come from inputs 1..3). */
typedef struct TfLiteStridedSliceParams {
  int begin_mask;
  int end_mask;
  int ellipsis_mask;
  int new_axis_mask;
  int shrink_axis_mask;
  bool offset;                   /* op version >= 8 */
} TfLiteStridedSliceParams;

/* PACK */
typedef struct TfLitePackParams {
  int values_count;
  int axis;
} TfLitePackParams;

/* SHAPE */
typedef struct TfLiteShapeParams {
  TfLiteType out_type;
} TfLiteShapeParams;

/* GATHER */
typedef struct TfLiteGatherParams {
  int axis;
  int batch_dims;
} TfLiteGatherParams;

/* LEAKY_RELU */
typedef struct TfLiteLeakyReluParams {
  float alpha;
} TfLiteLeakyReluParams;

/* GELU */
typedef struct TfLiteGeluParams {
  bool approximate;
} TfLiteGeluParams;

/* TRANSPOSE_CONV */
typedef struct TfLiteTransposeConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  TfLiteFusedActivation activation;  /* op version >= 4 */
  TfLiteType quantized_bias_type;    /* op version >= 5 */
} TfLiteTransposeConvParams;

/* BATCH_MATMUL */
typedef struct TfLiteBatchMatMulParams {
  bool adj_x;
  bool adj_y;
  bool asymmetric_quantize_inputs;
} TfLiteBatchMatMulParams;

/* RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR */
typedef struct TfLiteResizeParams {
  bool align_corners;
  bool half_pixel_centers;
} TfLiteResizeParams;

/* ARG_MAX / ARG_MIN */
typedef struct TfLiteArgMaxParams {
  TfLiteType output_type;
} TfLiteArgMaxParams;
/* Data movement (kernels/movement.cc). RESIZE_NEAREST_NEIGHBOR uses
 * TfLiteResizeParams above (same layout as TfLiteResizeNearestNeighborParams). */
typedef enum TfLiteMirrorPaddingMode {
  kTfLiteMirrorPaddingUnknown = 0,
  kTfLiteMirrorPaddingReflect = 1,
  kTfLiteMirrorPaddingSymmetric = 2
} TfLiteMirrorPaddingMode;
typedef struct TfLiteMirrorPaddingParams {
  TfLiteMirrorPaddingMode mode;
} TfLiteMirrorPaddingParams;
typedef struct TfLiteDepthToSpaceParams {  /* also SPACE_TO_DEPTH (TfLiteSpaceToDepthParams) */
  int block_size;
} TfLiteDepthToSpaceParams;
typedef struct TfLiteSplitParams {  /* also SPLIT_V (TfLiteSplitVParams) */
  int num_splits;
} TfLiteSplitParams;
typedef struct TfLiteUnpackParams {
  int num;
  int axis;
} TfLiteUnpackParams;

/* PAD, PADV2, QUANTIZE, DEQUANTIZE, RELU*, LOGISTIC, HARD_SWISH, TRANSPOSE
 * have no parameters: their builtin_data is NULL or a 1-byte placeholder;
 * never dereference it. */

#ifdef __cplusplus
} /* extern "C" */
#endif

/* ======================================================================== */
/* Layout pins (LP64 / x86-64 and aarch64 Linux).                           */
/* ======================================================================== */
#if defined(__cplusplus)
#define TFLITE_ABI_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define TFLITE_ABI_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#define TFLITE_ABI_SIZE(T, n) \
  TFLITE_ABI_STATIC_ASSERT(sizeof(T) == (n), "sizeof(" #T ") != " #n)
#define TFLITE_ABI_OFF(T, f, n)                   \
  TFLITE_ABI_STATIC_ASSERT(offsetof(T, f) == (n), \
                           "offsetof(" #T ", " #f ") != " #n)

#if defined(__LP64__) || defined(_LP64)
TFLITE_ABI_SIZE(TfLiteStatus, 4);
TFLITE_ABI_SIZE(TfLiteType, 4);
TFLITE_ABI_SIZE(TfLiteIntArray, 4);
TFLITE_ABI_OFF(TfLiteIntArray, data, 4);
TFLITE_ABI_SIZE(TfLiteFloatArray, 4);
TFLITE_ABI_OFF(TfLiteFloatArray, data, 4);
TFLITE_ABI_SIZE(TfLiteQuantizationParams, 8);
TFLITE_ABI_SIZE(TfLiteQuantization, 16);
TFLITE_ABI_OFF(TfLiteQuantization, params, 8);
TFLITE_ABI_SIZE(TfLiteAffineQuantization, 24);
TFLITE_ABI_OFF(TfLiteAffineQuantization, zero_point, 8);
TFLITE_ABI_OFF(TfLiteAffineQuantization, quantized_dimension, 16);
TFLITE_ABI_SIZE(TfLitePtrUnion, 8);

TFLITE_ABI_SIZE(TfLiteTensor, 112);
TFLITE_ABI_OFF(TfLiteTensor, type, 0);
TFLITE_ABI_OFF(TfLiteTensor, data, 8);
TFLITE_ABI_OFF(TfLiteTensor, dims, 16);
TFLITE_ABI_OFF(TfLiteTensor, params, 24);
TFLITE_ABI_OFF(TfLiteTensor, allocation_type, 32);
TFLITE_ABI_OFF(TfLiteTensor, bytes, 40);
TFLITE_ABI_OFF(TfLiteTensor, allocation, 48);
TFLITE_ABI_OFF(TfLiteTensor, name, 56);
TFLITE_ABI_OFF(TfLiteTensor, delegate, 64);
TFLITE_ABI_OFF(TfLiteTensor, buffer_handle, 72);
TFLITE_ABI_OFF(TfLiteTensor, data_is_stale, 76);
TFLITE_ABI_OFF(TfLiteTensor, is_variable, 77);
TFLITE_ABI_OFF(TfLiteTensor, quantization, 80);
TFLITE_ABI_OFF(TfLiteTensor, sparsity, 96);
TFLITE_ABI_OFF(TfLiteTensor, dims_signature, 104);

TFLITE_ABI_SIZE(TfLiteNode, 80);
TFLITE_ABI_OFF(TfLiteNode, inputs, 0);
TFLITE_ABI_OFF(TfLiteNode, outputs, 8);
TFLITE_ABI_OFF(TfLiteNode, intermediates, 16);
TFLITE_ABI_OFF(TfLiteNode, temporaries, 24);
TFLITE_ABI_OFF(TfLiteNode, user_data, 32);
TFLITE_ABI_OFF(TfLiteNode, builtin_data, 40);
TFLITE_ABI_OFF(TfLiteNode, custom_initial_data, 48);
TFLITE_ABI_OFF(TfLiteNode, custom_initial_data_size, 56);
TFLITE_ABI_OFF(TfLiteNode, delegate, 64);
TFLITE_ABI_OFF(TfLiteNode, might_have_side_effect, 72);

TFLITE_ABI_SIZE(TfLiteRegistration, 88);
TFLITE_ABI_OFF(TfLiteRegistration, init, 0);
TFLITE_ABI_OFF(TfLiteRegistration, free, 8);
TFLITE_ABI_OFF(TfLiteRegistration, prepare, 16);
TFLITE_ABI_OFF(TfLiteRegistration, invoke, 24);
TFLITE_ABI_OFF(TfLiteRegistration, profiling_string, 32);
TFLITE_ABI_OFF(TfLiteRegistration, builtin_code, 40);
TFLITE_ABI_OFF(TfLiteRegistration, custom_name, 48);
TFLITE_ABI_OFF(TfLiteRegistration, version, 56);
TFLITE_ABI_OFF(TfLiteRegistration, registration_external, 64);
TFLITE_ABI_OFF(TfLiteRegistration, async_kernel, 72);
TFLITE_ABI_OFF(TfLiteRegistration, inplace_operator, 80);

TFLITE_ABI_SIZE(TfLiteContext, 200);
TFLITE_ABI_OFF(TfLiteContext, tensors_size, 0);
TFLITE_ABI_OFF(TfLiteContext, GetExecutionPlan, 8);
TFLITE_ABI_OFF(TfLiteContext, tensors, 16);
TFLITE_ABI_OFF(TfLiteContext, impl_, 24);
TFLITE_ABI_OFF(TfLiteContext, ResizeTensor, 32);
TFLITE_ABI_OFF(TfLiteContext, ReportError, 40);
TFLITE_ABI_OFF(TfLiteContext, AddTensors, 48);
TFLITE_ABI_OFF(TfLiteContext, GetNodeAndRegistration, 56);
TFLITE_ABI_OFF(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels, 64);
TFLITE_ABI_OFF(TfLiteContext, recommended_num_threads, 72);
TFLITE_ABI_OFF(TfLiteContext, GetExternalContext, 80);
TFLITE_ABI_OFF(TfLiteContext, SetExternalContext, 88);
TFLITE_ABI_OFF(TfLiteContext, allow_fp32_relax_to_fp16, 96);
TFLITE_ABI_OFF(TfLiteContext, profiler, 104);
TFLITE_ABI_OFF(TfLiteContext, AllocatePersistentBuffer, 112);
TFLITE_ABI_OFF(TfLiteContext, AllocateBufferForEval, 120);
TFLITE_ABI_OFF(TfLiteContext, RequestScratchBufferInArena, 128);
TFLITE_ABI_OFF(TfLiteContext, GetScratchBuffer, 136);
TFLITE_ABI_OFF(TfLiteContext, ResizeTensorExplicit, 144);
TFLITE_ABI_OFF(TfLiteContext, PreviewDelegatePartitioning, 152);
TFLITE_ABI_OFF(TfLiteContext, GetTensor, 160);
TFLITE_ABI_OFF(TfLiteContext, GetEvalTensor, 168);
TFLITE_ABI_OFF(TfLiteContext, GetModelMetadata, 176);
TFLITE_ABI_OFF(TfLiteContext, AcquireSubgraphContext, 184);
TFLITE_ABI_OFF(TfLiteContext, ReleaseSubgraphContext, 192);

TFLITE_ABI_SIZE(TfLiteDelegateParams, 32);
TFLITE_ABI_OFF(TfLiteDelegateParams, nodes_to_replace, 8);
TFLITE_ABI_OFF(TfLiteDelegateParams, input_tensors, 16);
TFLITE_ABI_OFF(TfLiteDelegateParams, output_tensors, 24);

TFLITE_ABI_SIZE(TfLiteDelegate, 56);
TFLITE_ABI_OFF(TfLiteDelegate, data_, 0);
TFLITE_ABI_OFF(TfLiteDelegate, Prepare, 8);
TFLITE_ABI_OFF(TfLiteDelegate, CopyFromBufferHandle, 16);
TFLITE_ABI_OFF(TfLiteDelegate, CopyToBufferHandle, 24);
TFLITE_ABI_OFF(TfLiteDelegate, FreeBufferHandle, 32);
TFLITE_ABI_OFF(TfLiteDelegate, flags, 40);
TFLITE_ABI_OFF(TfLiteDelegate, opaque_delegate_builder, 48);
#endif /* LP64 */

/* builtin_data structs: all-int layouts, identical on every target. */
TFLITE_ABI_SIZE(TfLitePaddingValues, 16);
TFLITE_ABI_SIZE(TfLiteConvParams, 28);
TFLITE_ABI_OFF(TfLiteConvParams, stride_width, 4);
TFLITE_ABI_OFF(TfLiteConvParams, stride_height, 8);
TFLITE_ABI_OFF(TfLiteConvParams, activation, 12);
TFLITE_ABI_OFF(TfLiteConvParams, dilation_width_factor, 16);
TFLITE_ABI_OFF(TfLiteConvParams, dilation_height_factor, 20);
TFLITE_ABI_SIZE(TfLiteDepthwiseConvParams, 28);
TFLITE_ABI_OFF(TfLiteDepthwiseConvParams, depth_multiplier, 12);
TFLITE_ABI_OFF(TfLiteDepthwiseConvParams, activation, 16);
TFLITE_ABI_OFF(TfLiteDepthwiseConvParams, dilation_width_factor, 20);
TFLITE_ABI_OFF(TfLiteDepthwiseConvParams, dilation_height_factor, 24);
TFLITE_ABI_SIZE(TfLitePoolParams, 40);
TFLITE_ABI_OFF(TfLitePoolParams, filter_width, 12);
TFLITE_ABI_OFF(TfLitePoolParams, filter_height, 16);
TFLITE_ABI_OFF(TfLitePoolParams, activation, 20);
TFLITE_ABI_OFF(TfLitePoolParams, computed, 24);
TFLITE_ABI_SIZE(TfLiteFullyConnectedParams, 16);
TFLITE_ABI_OFF(TfLiteFullyConnectedParams, weights_format, 4);
TFLITE_ABI_OFF(TfLiteFullyConnectedParams, keep_num_dims, 8);
TFLITE_ABI_OFF(TfLiteFullyConnectedParams, asymmetric_quantize_inputs, 9);
TFLITE_ABI_OFF(TfLiteFullyConnectedParams, quantized_bias_type, 12);
TFLITE_ABI_SIZE(TfLiteSoftmaxParams, 4);
TFLITE_ABI_SIZE(TfLiteConcatenationParams, 8);
TFLITE_ABI_OFF(TfLiteConcatenationParams, activation, 4);
TFLITE_ABI_SIZE(TfLiteAddParams, 8);
TFLITE_ABI_OFF(TfLiteAddParams, pot_scale_int16, 4);
TFLITE_ABI_SIZE(TfLiteSubParams, 8);
TFLITE_ABI_SIZE(TfLiteMulParams, 4);
TFLITE_ABI_SIZE(TfLiteReshapeParams, 36);
TFLITE_ABI_OFF(TfLiteReshapeParams, num_dimensions, 32);
TFLITE_ABI_SIZE(TfLiteReducerParams, 1);
TFLITE_ABI_SIZE(TfLiteBatchMatMulParams, 3);
TFLITE_ABI_SIZE(TfLiteSqueezeParams, 36);
TFLITE_ABI_OFF(TfLiteSqueezeParams, num_squeeze_dims, 32);
TFLITE_ABI_SIZE(TfLiteStridedSliceParams, 24);
TFLITE_ABI_OFF(TfLiteStridedSliceParams, shrink_axis_mask, 16);
TFLITE_ABI_OFF(TfLiteStridedSliceParams, offset, 20);
TFLITE_ABI_SIZE(TfLitePackParams, 8);
TFLITE_ABI_SIZE(TfLiteShapeParams, 4);
TFLITE_ABI_SIZE(TfLiteGatherParams, 8);
TFLITE_ABI_SIZE(TfLiteLeakyReluParams, 4);
TFLITE_ABI_SIZE(TfLiteGeluParams, 1);
TFLITE_ABI_SIZE(TfLiteTransposeConvParams, 20);
TFLITE_ABI_SIZE(TfLiteResizeParams, 2);
TFLITE_ABI_SIZE(TfLiteArgMaxParams, 4);
TFLITE_ABI_SIZE(TfLiteMirrorPaddingParams, 4);
TFLITE_ABI_SIZE(TfLiteDepthToSpaceParams, 4);
TFLITE_ABI_SIZE(TfLiteSplitParams, 4);
TFLITE_ABI_SIZE(TfLiteUnpackParams, 8);

#undef TFLITE_ABI_SIZE
#undef TFLITE_ABI_OFF

#endif /* TFLITE_MPC_DELEGATE_TFLITE_ABI_H_ */
