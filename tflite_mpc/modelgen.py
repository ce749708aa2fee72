"""Local generation of int8 TFLite models (conformance tests, examples, benchmarks).

Everything is built offline: Keras layers / ``keras.applications`` with
``weights=None`` and scikit-learn's bundled *digits* dataset.  All models are
full-integer quantized by the stock TFLite converter, so the graphs are what a
user would get from the standard TF -> TFLite int8 flow.

Public API
----------
Conversion / oracle
    convert_int8(keras_model, rep_data_fn, *, int8_io=True, per_tensor=False,
                 dense_per_tensor=False) -> bytes
    run_tflite(model_bytes, inputs, *, reference=True, delegates=None) -> [np.ndarray]
    op_names(model_bytes) -> [str]            builtin op names, execution order
    op_counts(model_bytes) -> collections.Counter
    op_details(model_bytes) -> [dict]          op name + builtin options + tensors
    tensor_details(model_bytes) -> [dict]      dtype/shape/scales/zero points
    input_details(model_bytes), output_details(model_bytes)
    quantize(x, detail), dequantize(q, detail)
    random_input(model_bytes, seed=0) -> [np.ndarray]   int8 inputs for each input
    set_softmax_beta(model_bytes, beta) -> bytes
    patch_op(model_bytes, op_name, out_scale=None, out_zero_point=None) -> bytes
    truncate(model_bytes, n_ops) -> bytes       first n ops, last op's output

Single-op builders (each returns .tflite bytes, cached on disk)
    conv2d, depthwise_conv2d, fully_connected, average_pool2d, max_pool2d,
    mean, add, softmax, reshape, flatten, squeeze, activation (element-wise
    activations and int8 -> int8 QUANTIZE)

Stock models
    mobilenet_v1(alpha, size), mobilenet_v2(alpha, size)
    digits_cnn() -> (tflite_bytes, x_test_int8, y_test, float_test_accuracy)
    digits_data(), classify(model_bytes, xs, **run_kw) -> predictions

Every builder takes keyword ``int8_io`` (default True: int8 input/output
tensors, the graph contains exactly the one op; False: float32 I/O, the graph
is QUANTIZE -> op -> DEQUANTIZE) and ``seed``.  Results are cached under
``$TFLITE_MPC_MODEL_CACHE`` (default ``~/.cache/tflite-mpc/models``); the key
is the builder name + its parameters + the TF version + ``MODELGEN_VERSION``.
Set ``TFLITE_MPC_MODEL_CACHE=off`` to disable the cache.

Findings with TF 2.21 / Keras 3 / ai_edge_litert 2.3
-----------------------------------------------------
(op lists are asserted by tests/test_modelgen_smoke.py)

* ``TFLiteConverter.from_keras_model`` works with Keras 3 (it goes through
  ``model.export``).  ``from_concrete_functions`` on a ``tf.function`` that
  calls a Keras 3 model does NOT: calibration fails with
  ``READ_VARIABLE ... variable != nullptr``.
* Fix the batch size in ``keras.Input(batch_size=1)``.  Without it, every
  Reshape/Flatten becomes SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE (int32
  shape arithmetic; SHAPE reads an int8 tensor) and the I/O shape_signature
  has -1 for the batch.  Models without Reshape (MobileNetV2) are unchanged.
  Float I/O (``int8_io=False``) only adds one QUANTIZE per input and one
  DEQUANTIZE per output.
* Weights of CONV_2D, DEPTHWISE_CONV_2D **and FULLY_CONNECTED** are
  per-channel by default (quantized_dimension 0 for conv [O,kh,kw,I] and FC
  [O,I]; 3 for depthwise [1,kh,kw,C*dm]).
  ``converter._experimental_disable_per_channel = True`` (``per_tensor=True``)
  still works in 2.21 and makes conv, depthwise AND FC weights per-tensor;
  ``_experimental_disable_per_channel_quantization_for_dense_layers``
  (``dense_per_tensor=True``) makes only FC weights per-tensor.
  Weight zero points are 0; activations are asymmetric int8.
* Biases are int32, scale = input_scale * weight_scale[c], zero point 0.
  CONV_2D / DEPTHWISE_CONV_2D built with use_bias=False still get a (zero)
  int32 bias input; FULLY_CONNECTED with use_bias=False has bias index -1
  (``op_details`` gives None).
* Fused activations (RELU / RELU6) live only in the op's builtin options,
  never as separate ops; a separate Keras ReLU after Conv/Dense/Add is fused.
  RELU-fused outputs get zero point -128; RELU6 additionally scale <= 6/255.
* AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE keep the input scale/zero point;
  MEAN and ADD outputs get their own calibrated scale.  SOFTMAX output is
  always scale 1/256, zero point -128.  ADD options carry potScaleInt16=True
  (irrelevant for int8).
* ``tf.squeeze`` converts to RESHAPE (no SQUEEZE op).  Keras Dense on a 3-D
  input gives one FULLY_CONNECTED with keepNumDims=True.
* SOFTMAX beta: ``tf.nn.softmax(beta * x)`` in a Lambda does NOT fold into
  SOFTMAX's beta (it gives MUL + SOFTMAX(beta=1)); neither does
  Rescaling + Softmax.  ``softmax(beta=...)`` converts a plain softmax and
  patches beta in the flatbuffer (``set_softmax_beta``).
* The TFLite input order of a multi-input Keras model is neither the Keras
  order nor alphabetical (see ``add``), and a representative-dataset sample
  given as a list is fed by TFLite input index (silently resizing inputs!),
  so ``convert_int8`` feeds multi-input samples as {name: array} dicts.
* BUILTIN_REF vs optimized kernels: CONV_2D (and MEAN) results can differ by
  1 LSB, so the reference resolver is the oracle.  BUILTIN_REF SOFTMAX
  *aborts the process* (in Prepare, no exception) when its int8 input scale
  is below ~1e-8, which is what a raw random-init keras.applications
  MobileNet produces (activations vanish); see ``_bn_recalibrate``.
* The tf.lite.Interpreter used here is deprecated (warning silenced);
  ``ai_edge_litert.interpreter.Interpreter`` behaves the same.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import json
import os
import tempfile
import time
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from . import _quiet  # noqa: E402

tf = _quiet.import_tensorflow()  # without its start-up lines (absl banner, oneDNN, cuda)

try:  # only possible before the TF runtime is initialised
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
except RuntimeError:
    pass
with _quiet.filtered_stderr():  # initialising the runtime logs "failed call to cuInit" without a GPU
    tf.config.list_logical_devices()

import keras  # noqa: E402
from tensorflow.lite.python import schema_py_generated as _fb  # noqa: E402

# Bump when a builder changes in a way that changes its output.
MODELGEN_VERSION = 1
TF_VERSION = tf.__version__

_OP_NAME = {v: k for k, v in vars(_fb.BuiltinOperator).items()
            if not k.startswith("_")}
_ACT_NAME = {v: k for k, v in vars(_fb.ActivationFunctionType).items()
             if not k.startswith("_")}
_PAD_NAME = {v: k for k, v in vars(_fb.Padding).items() if not k.startswith("_")}
_TYPE_NAME = {v: k for k, v in vars(_fb.TensorType).items()
              if not k.startswith("_")}

L = keras.layers

__all__ = [
    "convert_int8", "run_tflite", "op_names", "op_counts", "op_details",
    "tensor_details", "input_details", "output_details", "quantize",
    "dequantize", "random_input", "set_softmax_beta", "patch_op", "truncate", "cache_dir",
    "conv2d", "depthwise_conv2d", "fully_connected", "average_pool2d",
    "max_pool2d", "mean", "add", "softmax", "reshape", "flatten", "squeeze", "activation", "movement", "movement_on_input", "unet_block",
    "mobilenet_v1", "mobilenet_v2", "digits_cnn", "digits_data", "classify",
    "conversion_stats",
]

# builder name -> list of conversion wall times (s) in this process
conversion_stats: dict[str, list[float]] = collections.defaultdict(list)


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------

def _seed(seed: int) -> None:
    """Reset Keras name counters and all RNGs (python, numpy, tf, keras)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def convert_int8(keras_model, rep_data_fn, *, int8_io=True, per_tensor=False,
                 dense_per_tensor=False, seed=0) -> bytes:
    """Full-integer (int8) quantization of a Keras model with the stock converter.

    ``rep_data_fn`` is either a callable returning an iterable of samples or a
    sequence of samples; a sample is a list of float32 arrays (one per model
    input, each including the batch dimension) or a single array.
    ``int8_io``: int8 model inputs/outputs (else float32, which adds
    QUANTIZE/DEQUANTIZE ops at the edges).  ``per_tensor``: set
    ``_experimental_disable_per_channel`` (conv, depthwise and FC weights get a
    single scale).  ``dense_per_tensor``: per-tensor weights for FC only.
    The result is deterministic for a deterministic model and data (the RNGs
    are seeded with ``seed`` before calibration).
    """
    if callable(rep_data_fn):
        gen = rep_data_fn
    else:
        samples = list(rep_data_fn)
        gen = lambda: iter(samples)  # noqa: E731

    # A list sample is fed by TFLite input index, and the TFLite input order
    # of a multi-input Keras model is NOT the Keras order (e.g. [b, a]); the
    # calibrator even silently resizes inputs to the fed shapes.  So samples
    # for multi-input models are turned into {keras input name: array} dicts,
    # which the calibrator maps through the signature.
    names = [getattr(t, "name", None) for t in getattr(keras_model, "inputs", [])]

    def rep():
        for s in gen():
            if isinstance(s, np.ndarray):
                s = [s]
            if isinstance(s, dict):
                yield {k: np.asarray(v, dtype=np.float32) for k, v in s.items()}
            elif len(names) > 1 and len(s) == len(names) and all(names):
                yield {n: np.asarray(a, dtype=np.float32) for n, a in zip(names, s)}
            else:
                yield [np.asarray(a, dtype=np.float32) for a in s]

    keras.utils.set_random_seed(seed)
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.inference_input_type = tf.float32
        conv.inference_output_type = tf.float32
    if per_tensor:
        conv._experimental_disable_per_channel = True
    if dense_per_tensor:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    # model.export() prints "Saved artifact at ...", the calibrator warns and prints
    # "fully_quantize: 0, inference_type: 6, ..." to file descriptor 2.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet.filtered_stderr():
        warnings.simplefilter("ignore")
        return conv.convert()


# --------------------------------------------------------------------------
# disk cache
# --------------------------------------------------------------------------

def cache_dir() -> str | None:
    d = os.environ.get("TFLITE_MPC_MODEL_CACHE",
                       os.path.join("~", ".cache", "tflite-mpc", "models"))
    if d.lower() in ("", "0", "off", "none", "false"):
        return None
    return os.path.expanduser(d)


def _cache_key(name: str, params: dict) -> str:
    blob = json.dumps({"builder": name, "params": params, "tf": TF_VERSION,
                       "keras": keras.__version__, "v": MODELGEN_VERSION},
                      sort_keys=True, default=str)
    h = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return f"{name}-{h}"


def _atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _cached(name: str, params: dict, make, suffix=".tflite"):
    """Return cached bytes for (name, params) or make() and store them."""
    d = cache_dir()
    path = None
    if d is not None:
        key = _cache_key(name, params)
        path = os.path.join(d, key + suffix)
        if os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
    t0 = time.perf_counter()
    data = make()
    conversion_stats[name].append(time.perf_counter() - t0)
    if path is not None:
        _atomic_write(path, data)
        _atomic_write(path[:-len(suffix)] + ".json",
                      json.dumps({"builder": name, "params": params,
                                  "tf": TF_VERSION}, default=str,
                                 indent=1).encode())
    return data


def _builder(fn=None, *, added=()):
    """Decorator: cache a builder's bytes keyed on its bound arguments.
    ``@_builder(added=("batch",))``: parameters added to an existing builder enter the
    key only when they differ from their default, so the models cached before keep
    their keys."""
    import inspect
    if fn is None:
        return lambda f: _builder(f, added=added)
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ba = sig.bind(*args, **kwargs)
        ba.apply_defaults()
        params = {k: _jsonable(v) for k, v in ba.arguments.items()
                  if not (k in added and v == sig.parameters[k].default)}
        return _cached(fn.__name__, params, lambda: fn(*args, **kwargs))

    wrapper.uncached = fn
    return wrapper


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------
# oracle / inspection helpers
# --------------------------------------------------------------------------

def _interp_api():
    """(Interpreter class, OpResolverType, load_delegate) of the backend
    chosen by $TFLITE_MPC_INTERPRETER: 'tf' (default, tf.lite.Interpreter)
    or 'litert' (ai_edge_litert.interpreter, same API)."""
    if os.environ.get("TFLITE_MPC_INTERPRETER", "tf").lower() == "litert":
        from ai_edge_litert import interpreter as li
        return li.Interpreter, li.OpResolverType, li.load_delegate
    return (tf.lite.Interpreter, tf.lite.experimental.OpResolverType,
            tf.lite.experimental.load_delegate)


def _interpreter(model_bytes, *, reference=True, delegates=None, num_threads=1):
    interp_cls, R, load_delegate = _interp_api()
    dels = []
    for d in delegates or []:
        if isinstance(d, (str, os.PathLike)):
            d = load_delegate(os.fspath(d))
        dels.append(d)
    # BUILTIN_REF: reference kernels and no default (XNNPACK) delegate.
    # Otherwise BUILTIN_WITHOUT_DEFAULT_DELEGATES unless reference is None
    # (plain BUILTIN: optimized kernels + XNNPACK applied by default).
    rtype = {True: R.BUILTIN_REF, False: R.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             None: R.AUTO}[reference]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter deprecation
        return interp_cls(model_content=bytes(model_bytes),
                          experimental_delegates=dels or None,
                          num_threads=num_threads,
                          experimental_op_resolver_type=rtype)


def run_tflite(model_bytes, inputs, *, reference=True, delegates=None,
               num_threads=1):
    """Run a model once and return the list of outputs (copies).

    ``inputs``: an array, a list of arrays in ``input_details`` order, or a
    dict keyed by signature input name (e.g. 'a') or tensor name; dtypes
    must match the model's input dtypes exactly (no silent casting).  Shapes
    that differ from the model's are applied with ``resize_tensor_input``.
    ``reference``: True -> BUILTIN_REF op resolver (reference kernels, the
    oracle for conformance); False -> optimized builtin kernels without the
    default XNNPACK delegate; None -> stock default (optimized + XNNPACK).
    ``delegates``: list of ``tf.lite.experimental.load_delegate`` objects
    or paths to delegate shared libraries (loaded with the backend's
    ``load_delegate``).  ``$TFLITE_MPC_INTERPRETER=litert``
    switches from tf.lite.Interpreter to ai_edge_litert's Interpreter.
    """
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    it = _interpreter(model_bytes, reference=reference, delegates=delegates,
                      num_threads=num_threads)
    ins = it.get_input_details()
    if isinstance(inputs, dict):
        inputs = _order_by_name(it, ins, inputs)
    if len(inputs) != len(ins):
        raise ValueError(f"model has {len(ins)} inputs, got {len(inputs)}")
    for d, x in zip(ins, inputs):
        x = np.asarray(x)
        if x.dtype != d["dtype"]:
            raise TypeError(f"input {d['name']}: dtype {x.dtype}, model "
                            f"expects {np.dtype(d['dtype'])}")
        if tuple(x.shape) != tuple(d["shape"]):
            it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    for d, x in zip(ins, inputs):
        it.set_tensor(d["index"], np.asarray(x))
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _order_by_name(it, ins, named):
    """Map {signature input name or tensor name: array} to input order."""
    idx = {}
    for sig in it.get_signature_list():
        for k, d in it.get_signature_runner(sig).get_input_details().items():
            idx[k] = d["index"]
    for d in ins:
        idx[d["name"]] = d["index"]
    pos = {d["index"]: i for i, d in enumerate(ins)}
    out = [None] * len(ins)
    for k, v in named.items():
        if k not in idx:
            raise KeyError(f"unknown input {k!r}; known: {sorted(idx)}")
        out[pos[idx[k]]] = v
    if any(v is None for v in out):
        raise ValueError(f"missing inputs; got {sorted(named)}")
    return out


def op_names(model_bytes):
    """Builtin op names of subgraph 0 in execution order (no delegates)."""
    it = _interpreter(model_bytes, reference=False)
    return [o["op_name"] for o in it._get_ops_details()]


def op_counts(model_bytes) -> collections.Counter:
    return collections.Counter(op_names(model_bytes))


def input_details(model_bytes):
    return _interpreter(model_bytes, reference=False).get_input_details()


def output_details(model_bytes):
    return _interpreter(model_bytes, reference=False).get_output_details()


def _tensor_info(sg, model, ti):
    t = sg.tensors[ti]
    q = t.quantization
    scales = (np.asarray(q.scale, np.float32) if q is not None
              and q.scale is not None else np.zeros(0, np.float32))
    zps = (np.asarray(q.zeroPoint, np.int64) if q is not None
           and q.zeroPoint is not None else np.zeros(0, np.int64))
    buf = model.buffers[t.buffer] if t.buffer else None
    return {
        "index": ti,
        "name": t.name.decode() if isinstance(t.name, bytes) else t.name,
        "dtype": _TYPE_NAME.get(t.type, t.type),
        "shape": [int(s) for s in (t.shape if t.shape is not None else [])],
        "scales": scales,
        "zero_points": zps,
        "quantized_dimension": int(q.quantizedDimension) if q is not None else 0,
        "per_channel": len(scales) > 1,
        # constant = backed by a non-empty buffer (inline data or, for
        # models written with buffer offsets, a non-zero size)
        "is_constant": buf is not None and (
            (buf.data is not None and len(buf.data) > 0)
            or bool(getattr(buf, "size", 0))),
    }


def _parse(model_bytes):
    return _fb.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)


def tensor_details(model_bytes, subgraph=0):
    """Per-tensor dtype/shape/quantization (incl. per-channel scales)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[subgraph]
    return [_tensor_info(sg, m, i) for i in range(len(sg.tensors))]


def op_details(model_bytes, subgraph=0):
    """Ops in order, each as a dict with ``op`` (name), ``options`` (builtin
    options with enum values decoded: fusedActivationFunction -> 'RELU',
    padding -> 'SAME', ...), ``inputs``/``outputs`` (tensor_details dicts;
    an omitted optional input, e.g. a missing FC bias, is None)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[subgraph]
    out = []
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        opts = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        if "fusedActivationFunction" in opts:
            opts["fusedActivationFunction"] = _ACT_NAME.get(
                opts["fusedActivationFunction"], opts["fusedActivationFunction"])
        if "padding" in opts:
            opts["padding"] = _PAD_NAME.get(opts["padding"], opts["padding"])
        for k, v in list(opts.items()):
            if isinstance(v, np.ndarray):
                opts[k] = v.tolist()
        ins = [None if i < 0 else _tensor_info(sg, m, i) for i in op.inputs]
        outs = [_tensor_info(sg, m, i) for i in op.outputs]
        out.append({"op": _OP_NAME.get(code, str(code)), "options": opts,
                    "inputs": ins, "outputs": outs})
    return out


def quantize(x, detail):
    """Float -> integer using an (input) detail dict's quantization."""
    scale, zp = detail["quantization"]
    dt = np.dtype(detail["dtype"])
    if scale == 0:
        return np.asarray(x, dt)
    info = np.iinfo(dt)
    q = np.round(np.asarray(x, np.float64) / scale) + zp
    return np.clip(q, info.min, info.max).astype(dt)


def dequantize(q, detail):
    scale, zp = detail["quantization"]
    if scale == 0:
        return np.asarray(q, np.float32)
    return ((np.asarray(q, np.float64) - zp) * scale).astype(np.float32)


def random_input(model_bytes, seed=0):
    """Uniformly random integer (or N(0,1) float) data for every model input."""
    rng = np.random.default_rng(seed)
    res = []
    for d in input_details(model_bytes):
        dt = np.dtype(d["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            res.append(rng.integers(info.min, info.max, size=d["shape"],
                                    endpoint=True).astype(dt))
        else:
            res.append(rng.standard_normal(d["shape"]).astype(dt))
    return res


def set_softmax_beta(model_bytes, beta) -> bytes:
    """Return a copy of the model with every SOFTMAX's beta set to ``beta``."""
    m = _parse(model_bytes)
    n = 0
    for sg in m.subgraphs:
        for op in sg.operators:
            oc = m.operatorCodes[op.opcodeIndex]
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == _fb.BuiltinOperator.SOFTMAX:
                op.builtinOptions.beta = float(beta)
                n += 1
    if not n:
        raise ValueError("model has no SOFTMAX op")
    return _pack(m)


def _pack(m) -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(1 << 16)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def truncate(model_bytes, n_ops) -> bytes:
    """Keep the first ``n_ops`` ops of subgraph 0; the model's output becomes
    the last kept op's output(s) (to bisect where two runtimes diverge).
    Unused tensors/buffers are left in place (harmless)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[0]
    if not 0 < n_ops <= len(sg.operators):
        raise ValueError(f"n_ops must be in 1..{len(sg.operators)}")
    sg.operators = sg.operators[:n_ops]
    sg.outputs = [int(i) for i in sg.operators[-1].outputs]
    m.signatureDefs = None  # the signature would name the old outputs
    return _pack(m)


def patch_op(model_bytes, op_name, *, out_scale=None, out_zero_point=None) -> bytes:
    """Return a copy of a single-op model whose op is replaced by ``op_name``
    (same tensors; the op must take no builtin options) and whose output
    quantization is optionally overridden.  Used for ops the converter never
    emits from Keras code with int8 I/O (int8 -> int8 QUANTIZE, RELU_0_TO_1)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[0]
    if len(sg.operators) != 1:
        raise ValueError("patch_op expects a single-op model")
    op = sg.operators[0]
    code = getattr(_fb.BuiltinOperator, op_name)
    oc = m.operatorCodes[op.opcodeIndex]
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, _fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = 1
    op.builtinOptionsType = 0
    op.builtinOptions = None
    q = sg.tensors[op.outputs[0]].quantization
    if out_scale is not None:
        q.scale = [float(out_scale)]
    if out_zero_point is not None:
        q.zeroPoint = [int(out_zero_point)]
    return _pack(m)


# --------------------------------------------------------------------------
# single-op builders
# --------------------------------------------------------------------------

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _rand_data(shapes, n, seed, scales=None, offsets=None):
    rng = np.random.default_rng(seed + 12345)
    scales = scales or [1.0] * len(shapes)
    offsets = offsets or [0.0] * len(shapes)
    return [[(rng.standard_normal(s) * sc + off).astype(np.float32)
             for s, sc, off in zip(shapes, scales, offsets)] for _ in range(n)]


def _act_layer(activation):
    if activation in (None, "none", "linear"):
        return None
    if activation == "relu":
        return L.ReLU()
    if activation == "relu6":
        return L.ReLU(max_value=6.0)
    raise ValueError(f"activation {activation!r}: use None, 'relu' or 'relu6'")


def _init(seed, kind="w", scale=0.5):
    if kind == "w":
        return keras.initializers.GlorotUniform(seed=seed)
    return keras.initializers.RandomUniform(-scale, scale, seed=seed + 1)


def _model(input_shapes, fn, batch):
    ins = [keras.Input(s, batch_size=batch) for s in input_shapes]
    out = fn(*ins)
    return keras.Model(ins if len(ins) > 1 else ins[0], out)


def _one_layer(layer, activation, shape, batch, int8_io, per_tensor, seed, n_calib):
    """A Keras layer (plus an optional activation) on one input, converted to int8."""
    act = _act_layer(activation)
    m = _model([shape], lambda x: act(layer(x)) if act else layer(x), batch)
    return convert_int8(m, _rand_data([(batch,) + tuple(shape)], n_calib, seed),
                        int8_io=int8_io, per_tensor=per_tensor, seed=seed)


@_builder
def conv2d(h=8, w=8, cin=3, cout=4, k=3, stride=1, padding="same", dilation=1,
           activation=None, use_bias=True, per_tensor=False, *, batch=1,
           int8_io=True, seed=0, n_calib=16):
    """One CONV_2D (fused activation in its options: NONE/RELU/RELU6).

    ``k``/``stride``/``dilation`` are ints or (h, w) pairs.  Keras forbids
    stride > 1 together with dilation > 1.  Weights are per-channel
    (quantized_dimension 0) unless ``per_tensor``.  Bias (if any) is int32.
    Without a bias the op has 2 inputs (no zero bias tensor is created).
    """
    _seed(seed)
    layer = L.Conv2D(cout, _pair(k), strides=_pair(stride), padding=padding,
                     dilation_rate=_pair(dilation), use_bias=use_bias,
                     kernel_initializer=_init(seed),
                     bias_initializer=_init(seed, "b"))
    return _one_layer(layer, activation, (h, w, cin), batch, int8_io, per_tensor, seed, n_calib)


@_builder
def depthwise_conv2d(h=8, w=8, c=4, k=3, stride=1, padding="same", dilation=1,
                     depth_multiplier=1, activation=None, use_bias=True,
                     per_tensor=False, *, batch=1, int8_io=True, seed=0,
                     n_calib=16):
    """One DEPTHWISE_CONV_2D; weights [1, kh, kw, c*dm], per-channel on
    quantized_dimension 3 unless ``per_tensor``; options carry
    depthMultiplier.  Keras forbids stride > 1 with dilation > 1."""
    _seed(seed)
    act = _act_layer(activation)

    def f(x):
        y = L.DepthwiseConv2D(_pair(k), strides=_pair(stride), padding=padding,
                              dilation_rate=_pair(dilation),
                              depth_multiplier=depth_multiplier,
                              use_bias=use_bias,
                              depthwise_initializer=_init(seed),
                              bias_initializer=_init(seed, "b"))(x)
        return act(y) if act else y
    m = _model([(h, w, c)], f, batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed),
                        int8_io=int8_io, per_tensor=per_tensor, seed=seed)


@_builder
def fully_connected(batch=1, in_features=16, out_features=8, activation=None,
                    use_bias=True, per_tensor=False, seq=None, *, int8_io=True,
                    seed=0, n_calib=16):
    """One FULLY_CONNECTED.  Weights [out, in], per-channel by default in TF
    2.21 (``per_tensor=True`` -> one scale).  ``seq`` given: 3-D input
    [batch, seq, in] -> FULLY_CONNECTED with keepNumDims=True and output
    [batch, seq, out]."""
    _seed(seed)
    act = _act_layer(activation)
    shape = (in_features,) if seq is None else (seq, in_features)

    def f(x):
        y = L.Dense(out_features, use_bias=use_bias,
                    kernel_initializer=_init(seed),
                    bias_initializer=_init(seed, "b"))(x)
        return act(y) if act else y
    m = _model([shape], f, batch)
    return convert_int8(m, _rand_data([(batch,) + shape], n_calib, seed),
                        int8_io=int8_io, per_tensor=per_tensor,
                        dense_per_tensor=per_tensor, seed=seed)


def _pool(cls, h, w, c, pool, stride, padding, batch, int8_io, seed, n_calib):
    _seed(seed)
    m = _model([(h, w, c)],
               lambda x: cls(_pair(pool), strides=_pair(stride) if stride else None,
                             padding=padding)(x), batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


@_builder
def average_pool2d(h=8, w=8, c=4, pool=2, stride=None, padding="valid", *,
                   batch=1, int8_io=True, seed=0, n_calib=16):
    """One AVERAGE_POOL_2D (stride None = pool).  Input and output share
    scale/zero point."""
    return _pool(L.AveragePooling2D, h, w, c, pool, stride, padding, batch,
                 int8_io, seed, n_calib)


@_builder
def max_pool2d(h=8, w=8, c=4, pool=2, stride=None, padding="valid", *,
               batch=1, int8_io=True, seed=0, n_calib=16):
    """One MAX_POOL_2D (stride None = pool).  Input and output share
    scale/zero point."""
    return _pool(L.MaxPooling2D, h, w, c, pool, stride, padding, batch,
                 int8_io, seed, n_calib)


@_builder
def mean(h=8, w=8, c=4, keepdims=False, *, batch=1, int8_io=True, seed=0,
         n_calib=16):
    """GlobalAveragePooling2D -> one MEAN over axes [1, 2] (axis is an int32
    constant input; keepDims in the options).  Output scale differs from the
    input scale (calibrated separately)."""
    _seed(seed)
    m = _model([(h, w, c)], lambda x: L.GlobalAveragePooling2D(keepdims=keepdims)(x),
               batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


@_builder
def add(shape=(4, 4, 8), scale_a=1.0, scale_b=4.0, activation=None,
        shape_b=None, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """One ADD of two graph inputs ``a`` and ``b`` with different quantization
    scales (calibration data ~ N(0, scale_a^2) and N(0, scale_b^2)).
    ``activation`` 'relu'/'relu6' is fused into the ADD's options.
    ``shape_b`` (without batch) gives a broadcasting second input, e.g.
    (1, 1, 8).  The TFLite model's input 0 is ``a`` and input 1 is ``b``
    (rather than the positions).

    Surprise: the TFLite input order of a multi-input Keras model is neither
    the Keras order nor alphabetical (names a, b -> TFLite inputs [b, a];
    c,a,d,b -> [d,c,b,a]; lhs,rhs,zz,aa -> [lhs,aa,zz,rhs]; deterministic for
    given names).  Address inputs by name: ``input_details(m)[i]['name']`` is
    'serving_default_a:0' / 'serving_default_b:0', and ``run_tflite`` accepts
    ``{'a': qa, 'b': qb}``.  The ADD operands are (a, b).  The ADD options
    also carry potScaleInt16=True (only meaningful for int16).
    """
    _seed(seed)
    act = _act_layer(activation)
    shape = tuple(shape)
    sb = tuple(shape_b) if shape_b is not None else shape
    a = keras.Input(shape, batch_size=batch, name="a")
    b = keras.Input(sb, batch_size=batch, name="b")
    y = L.Add()([a, b]) if sb == shape else L.Lambda(lambda t: t[0] + t[1])([a, b])
    y = act(y) if act else y
    m = keras.Model([a, b], y)
    rng = np.random.default_rng(seed + 12345)
    data = [{"a": (rng.standard_normal((batch,) + shape) * scale_a).astype(np.float32),
             "b": (rng.standard_normal((batch,) + sb) * scale_b).astype(np.float32)}
            for _ in range(n_calib)]
    return convert_int8(m, data, int8_io=int8_io, seed=seed)


@_builder
def softmax(n=10, beta=1.0, rows=None, *, batch=1, int8_io=True, seed=0,
            n_calib=16, logit_scale=3.0):
    """One SOFTMAX over the last axis of [batch, n] (or [batch, rows, n]).

    The converter never produces beta != 1 from Keras/TF code (tf.nn.softmax
    (beta*x) gives MUL + SOFTMAX(beta=1)), so for beta != 1 the converted
    model's SOFTMAX beta field is patched (input quantization was calibrated
    on the logits x, so the op computes softmax(beta * x)).  Output is
    scale 1/256, zero point -128.
    """
    _seed(seed)
    shape = (n,) if rows is None else (rows, n)
    m = _model([shape], lambda x: L.Softmax()(x), batch)
    b = convert_int8(m, _rand_data([(batch,) + shape], n_calib, seed,
                                   scales=[logit_scale]),
                     int8_io=int8_io, seed=seed)
    if beta != 1.0:
        b = set_softmax_beta(b, beta)
    return b


_ACTIVATIONS = {
    "logistic": lambda a: L.Activation("sigmoid"),
    "tanh": lambda a: L.Activation("tanh"),
    "hard_swish": lambda a: L.Activation("hard_swish"),
    "gelu": lambda a: L.Lambda(lambda t: tf.nn.gelu(t, approximate=False)),
    "gelu_approx": lambda a: L.Lambda(lambda t: tf.nn.gelu(t, approximate=True)),
    "leaky_relu": lambda a: L.LeakyReLU(negative_slope=a),
    "relu": lambda a: L.ReLU(),
    "relu6": lambda a: L.ReLU(max_value=6.0),
    "relu_n1_to_1": lambda a: L.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0)),
    "elu": lambda a: L.ELU(),
    # alpha (a weight) uniform in [-alpha, 1]; per element, or per channel of an HWC input
    "prelu": lambda a: L.PReLU(alpha_initializer=keras.initializers.RandomUniform(-a, 1.0, seed=7)),
    "prelu_channel": lambda a: L.PReLU(alpha_initializer=keras.initializers.RandomUniform(-a, 1.0, seed=7),
                                       shared_axes=[1, 2]),
}


@_builder
def activation(kind, n=256, in_scale=3.0, in_offset=0.0, alpha=0.2, out_scale=None,
               out_zero_point=None, shape=None, dense=None, *, batch=1, int8_io=True, seed=0,
               n_calib=16):
    """One element-wise activation on a [batch, n] (or [batch, *shape]) input
    (no layer before it):
    ``kind`` in logistic, tanh, hard_swish, gelu (erf), gelu_approx (tanh form),
    leaky_relu (``alpha``), prelu / prelu_channel (a PRELU whose constant alpha,
    uniform in [-alpha, 1], has the input's shape / one value per channel of an
    HWC ``shape``: shared_axes [1, 2]), relu, relu6, relu_n1_to_1 (tf.clip_by_value(x, -1, 1)
    converts to RELU_N1_TO_1), elu; and, patched from the relu model
    (``patch_op``), quantize (int8 -> int8 QUANTIZE: requantization from the
    input's to the output's quantization) and relu_0_to_1.  ``dense`` (an int):
    a Dense layer with that many units before the activation (FULLY_CONNECTED
    -> op; not for the patched kinds; the converter does not fuse any of these
    activations into the FULLY_CONNECTED, except relu / relu6 / relu_n1_to_1).  Calibration data
    ~ N(in_offset, in_scale^2) sets the input (and calibrated output)
    quantization; ``out_scale`` / ``out_zero_point`` override the output's
    (only for the patched ops).

    Converter findings (TF 2.21): every kind above except elu stays one int8 op
    (GELU with approximate=True/False in its options); ELU becomes a float
    region DEQUANTIZE -> ELU (float) -> QUANTIZE; tf.clip_by_value(x, 0, 1)
    becomes MINIMUM + RELU (no RELU_0_TO_1); LOGISTIC output is always scale
    1/256, zero point -128, TANH 1/128 and 0.
    """
    patched = {"quantize": "QUANTIZE", "relu_0_to_1": "RELU_0_TO_1"}
    _seed(seed)
    layer = _ACTIVATIONS["relu" if kind in patched else kind](alpha)
    shape = (n,) if shape is None else tuple(shape)
    if dense is not None and kind in patched:
        raise ValueError(f"dense= is not available for {kind}")
    pre = (L.Dense(dense, kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))
           if dense is not None else None)
    m = _model([shape], lambda x: layer(pre(x) if pre else x), batch)
    b = convert_int8(m, _rand_data([(batch,) + shape], n_calib, seed, scales=[in_scale],
                                   offsets=[in_offset]),
                     int8_io=int8_io, seed=seed)
    if kind in patched:
        b = patch_op(b, patched[kind], out_scale=out_scale, out_zero_point=out_zero_point)
    return b


@_builder
def reshape(in_shape=(4, 4, 8), out_shape=(16, 8), *, batch=1, int8_io=True,
            seed=0, n_calib=16):
    """One RESHAPE (Keras Reshape; shapes exclude the batch dim).  The new
    shape is an int32 constant second input; in/out quantization identical."""
    _seed(seed)
    m = _model([tuple(in_shape)], lambda x: L.Reshape(tuple(out_shape))(x), batch)
    return convert_int8(m, _rand_data([(batch,) + tuple(in_shape)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


@_builder
def flatten(h=4, w=4, c=8, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """Keras Flatten -> one RESHAPE to [batch, h*w*c]."""
    _seed(seed)
    m = _model([(h, w, c)], lambda x: L.Flatten()(x), batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


@_builder
def squeeze(in_shape=(1, 1, 8), axis=(1, 2), *, batch=1, int8_io=True, seed=0,
            n_calib=16):
    """``tf.squeeze`` in a Lambda -> one RESHAPE (the converter never emits
    SQUEEZE here); in/out quantization identical."""
    _seed(seed)
    ax = tuple(axis)
    m = _model([tuple(in_shape)], lambda x: L.Lambda(lambda t: tf.squeeze(t, ax))(x),
               batch)
    return convert_int8(m, _rand_data([(batch,) + tuple(in_shape)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


# --------------------------------------------------------------------------
# data movement ops (PAD, CONCATENATION, TRANSPOSE, SLICE, ...)
# --------------------------------------------------------------------------

def _movement_fn(kind, a):
    """The TF function of one data-movement kind on (t, u): t the conv output
    (reshaped), u a second branch (for two-input kinds)."""
    cval = a.get("constant_values", 0.0)
    fns = {
        "pad": lambda t, u: tf.pad(t, a["paddings"], constant_values=cval),
        "zero_padding2d": lambda t, u: L.ZeroPadding2D(a["padding"])(t),
        "mirror_pad": lambda t, u: tf.pad(t, a["paddings"], mode=a["mode"]),
        "concat": lambda t, u: tf.concat([t, u] * a.get("repeat", 1), axis=a["axis"]),
        "concatenate": lambda t, u: L.Concatenate(axis=a["axis"])([t, u]),
        "concat_const": lambda t, u: tf.concat(
            [t, tf.constant(np.linspace(-1, 1, int(np.prod(t.shape))).reshape(t.shape).astype(np.float32))],
            axis=a["axis"]),
        "transpose": lambda t, u: tf.transpose(t, a["perm"]),
        "permute": lambda t, u: L.Permute(a["dims"])(t),
        "slice": lambda t, u: tf.slice(t, a["begin"], a["size"]),
        "cropping2d": lambda t, u: L.Cropping2D(a["cropping"])(t),
        "strided_slice": lambda t, u: tf.strided_slice(
            t, a["begin"], a["end"], a.get("strides"), begin_mask=a.get("begin_mask", 0),
            end_mask=a.get("end_mask", 0), ellipsis_mask=a.get("ellipsis_mask", 0),
            new_axis_mask=a.get("new_axis_mask", 0), shrink_axis_mask=a.get("shrink_axis_mask", 0)),
        "split": lambda t, u: tf.split(t, a["splits"], axis=a["axis"]),
        "unstack": lambda t, u: tf.unstack(t, axis=a["axis"]),
        "stack": lambda t, u: tf.stack([t, u], axis=a["axis"]),
        "gather": lambda t, u: tf.gather(t, tf.constant(a["indices"], dtype=a.get("index_dtype", "int32")),
                                         axis=a.get("axis", 0), batch_dims=a.get("batch_dims", 0)),
        "gather_nd": lambda t, u: tf.gather_nd(t, tf.constant(a["indices"], dtype=tf.int32),
                                               batch_dims=a.get("batch_dims", 0)),
        "depth_to_space": lambda t, u: tf.nn.depth_to_space(t, a["block"]),
        "space_to_depth": lambda t, u: tf.nn.space_to_depth(t, a["block"]),
        "resize_nearest": lambda t, u: tf.compat.v1.image.resize_nearest_neighbor(
            t, a["size"], align_corners=a.get("align_corners", False),
            half_pixel_centers=a.get("half_pixel_centers", False)),
        "upsampling2d": lambda t, u: L.UpSampling2D(a["size"], interpolation="nearest")(t),
        "tile": lambda t, u: tf.tile(t, a["multiples"]),
        "expand_dims": lambda t, u: tf.expand_dims(t, a["axis"]),
        "broadcast_to": lambda t, u: tf.broadcast_to(t, a["shape"]),
        "space_to_batch": lambda t, u: tf.space_to_batch_nd(t, a["block"], a["paddings"]),
        "batch_to_space": lambda t, u: tf.batch_to_space(t, a["block"], a["crops"]),
    }
    return fns[kind]


# Versions of int8 data-movement ops the converter emits beyond what the BUILTIN_REF
# resolver registers (TILE v3, DEPTH_TO_SPACE v2): lowered to the highest registered
# version, whose reference kernel computes int8 the same way.
_REF_VERSION = {"TILE": 2, "DEPTH_TO_SPACE": 1}


def _lower_versions(model_bytes):
    m = _parse(model_bytes)
    for oc in m.operatorCodes:
        name = _OP_NAME.get(max(oc.builtinCode, oc.deprecatedBuiltinCode))
        if name in _REF_VERSION and oc.version > _REF_VERSION[name]:
            oc.version = _REF_VERSION[name]
    return _pack(m)


def _reshape_to_expand_dims(model_bytes, axis):
    """The last op, a RESHAPE that inserts one unit dimension, as EXPAND_DIMS(x, axis)
    (the converter turns tf.expand_dims with a static shape into RESHAPE)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[0]
    op = sg.operators[-1]
    if _OP_NAME[max(m.operatorCodes[op.opcodeIndex].builtinCode,
                    m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)] != "RESHAPE":
        raise ValueError("the last op is not a RESHAPE")
    oc = _fb.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = _fb.BuiltinOperator.EXPAND_DIMS
    oc.version = 1
    m.operatorCodes.append(oc)
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.builtinOptionsType = 0
    op.builtinOptions = None
    t = sg.tensors[op.inputs[1]]
    t.shape = [1]
    t.type = _fb.TensorType.INT32
    buf = _fb.BufferT()
    buf.data = np.frombuffer(np.asarray([axis], np.int32).tobytes(), np.uint8)
    m.buffers.append(buf)
    t.buffer = len(m.buffers) - 1
    return _pack(m)


@_builder
def movement(kind, shape=(4, 4, 3), reshape=None, params=None, *, batch=1, int8_io=True,
             seed=0, n_calib=16):
    """A 1x1 CONV_2D on an [batch, *shape] input (so the op reads a secret int8
    tensor computed in the graph), an optional Keras Reshape to ``reshape``
    (without batch), then one data-movement op (``kind``, a TF function or Keras
    layer in a Lambda, ``params`` a dict of its arguments; see ``_movement_fn``).
    Two-input kinds (concat, stack) take a second branch: another 1x1 conv with
    other weights, hence another output scale (the converter requantizes it to
    the op's output quantization with an int8 QUANTIZE).  Multi-output kinds
    (split, unstack) give a model with several int8 outputs.

    Converter findings (TF 2.21): tf.pad -> PAD (PADV2 when constant_values != 0,
    the pad value an int8 constant with the output's quantization); ZeroPadding2D
    -> PAD; Concatenate -> CONCATENATION; Permute -> TRANSPOSE; Cropping2D -> STRIDED_SLICE; tf.split with a count
    -> SPLIT, with sizes -> SPLIT_V; tf.unstack -> UNPACK; tf.stack -> PACK;
    tf.compat.v1.image.resize_nearest_neighbor -> RESIZE_NEAREST_NEIGHBOR, but Keras 3
    UpSampling2D(nearest) -> RESHAPE, TILE, RESHAPE, TILE, RESHAPE (no resize op);
    tf.expand_dims with a static shape -> RESHAPE, so ``kind="expand_dims"`` rewrites
    that RESHAPE as EXPAND_DIMS(x, axis).  int8 TILE is v3 and DEPTH_TO_SPACE v2,
    versions the BUILTIN_REF resolver lacks: they are lowered to v2 / v1 (same
    reference kernel code for int8), see ``_REF_VERSION``.  Op lists are asserted
    by tests/test_ops_movement.py.
    """
    _seed(seed)
    a = dict(params or {})
    fn = _movement_fn(kind, a)
    c = shape[-1]

    def f(x):
        t = L.Conv2D(c, 1, kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))(x)
        u = L.Conv2D(c, 1, kernel_initializer=_init(seed + 5), bias_initializer=_init(seed + 5, "b", 2.0))(x)
        if reshape is not None:
            t = L.Reshape(tuple(reshape))(t)
            u = L.Reshape(tuple(reshape))(u)
        if kind in ("zero_padding2d", "permute", "cropping2d", "upsampling2d", "concatenate"):
            return fn(t, u)
        return L.Lambda(lambda ts: fn(ts[0], ts[1]))([t, u])
    m = _model([tuple(shape)], f, batch)
    b = convert_int8(m, _rand_data([(batch,) + tuple(shape)], n_calib, seed),
                     int8_io=int8_io, seed=seed)
    if kind == "expand_dims":
        b = _reshape_to_expand_dims(b, a["axis"])
    return _lower_versions(b)



@_builder
def movement_on_input(kind, shape=(4, 4, 3), params=None, in_offset=2.0, *, batch=1, int8_io=True, seed=0,
                      n_calib=16):
    """One data-movement op (as in ``movement``) applied directly to the graph input
    (the data owner's input sharing), calibrated on N(in_offset, 1) data so that the
    zero point (the pad value) is far from 0.  Two-input kinds take the input twice."""
    _seed(seed)
    fn = _movement_fn(kind, dict(params or {}))
    m = _model([tuple(shape)], lambda x: L.Lambda(lambda t: fn(t, t))(x), batch)
    b = convert_int8(m, _rand_data([(batch,) + tuple(shape)], n_calib, seed, offsets=[in_offset]),
                     int8_io=int8_io, seed=seed)
    return _lower_versions(b)


@_builder
def unet_block(size=8, c=4, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """A small U-Net-like graph exercising data movement between real layers:
    Conv2D -> MaxPooling2D -> Conv2D -> UpSampling2D(nearest) -> Concatenate with
    the skip connection -> Permute -> Cropping2D -> Conv2D -> ZeroPadding2D.  The
    two concatenated branches have their own calibrated scales (the converter
    aligns them to the CONCATENATION's).  A ZeroPadding2D before a VALID conv is
    folded into a SAME conv by the converter, hence the PAD at the end."""
    _seed(seed)
    x = keras.Input((size, size, 3), batch_size=batch)
    conv = lambda n, k=3, pad="same", s=0: L.Conv2D(  # noqa: E731
        n, k, padding=pad, activation="relu", kernel_initializer=_init(seed + s),
        bias_initializer=_init(seed + s, "b"))
    skip = conv(c)(x)
    h = L.MaxPooling2D()(skip)
    h = conv(2 * c, s=2)(h)
    h = L.UpSampling2D(2, interpolation="nearest")(h)
    h = L.Concatenate()([h, skip])
    h = L.Permute((2, 1, 3))(h)
    h = L.Cropping2D(((1, 0), (0, 1)))(h)
    y = L.Conv2D(c, 1, kernel_initializer=_init(seed + 3), bias_initializer=_init(seed + 3, "b"))(h)
    y = L.ZeroPadding2D(((1, 0), (0, 2)))(y)
    m = keras.Model(x, y)
    b = convert_int8(m, _rand_data([(batch, size, size, 3)], n_calib, seed), int8_io=int8_io, seed=seed)
    return _lower_versions(b)


# --------------------------------------------------------------------------
# broadcasting arithmetic and reductions (ADD/SUB/MUL broadcast, MAXIMUM, SUM, ...)
# --------------------------------------------------------------------------

_BINARY = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "maximum": tf.maximum,
    "minimum": tf.minimum,
    "squared_difference": tf.math.squared_difference,
}


@_builder
def binary(op="add", shape=(4, 4, 8), shape_b=None, scale_a=1.0, scale_b=4.0, activation=None,
           const=None, conv=False, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """One broadcasting binary op ``op`` in add, sub, mul, maximum, minimum,
    squared_difference (ADD, SUB, MUL, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE).

    ``shape`` / ``shape_b`` (without batch; ``shape_b`` None = ``shape``) are the
    operand shapes, broadcast as numpy does (e.g. (1, 1, 8) or (8,) against
    (4, 4, 8)).  Calibration data ~ N(0, scale_a^2) / N(0, scale_b^2).
    ``activation`` 'relu'/'relu6' follows the op (the converter fuses it into
    ADD / SUB / MUL options).  ``const`` None: two graph inputs ``a`` and ``b``
    (address them by name, see ``add``); 'b': the second operand is a constant
    of shape ``shape_b`` (values ~ N(0, scale_b^2), a model weight), 'a': the
    constant is the first operand (``c op x``); the graph then has one input.
    ``conv``: a 1x1 Conv2D (as many channels as the input) before the op on
    operand ``a`` (so the op reads a computed secret tensor).
    """
    _seed(seed)
    act = _act_layer(activation)
    f = _BINARY[op]
    shape = tuple(shape)
    sb = tuple(shape_b) if shape_b is not None else shape
    rng = np.random.default_rng(seed + 12345)
    pre = (L.Conv2D(shape[-1], 1, kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))
           if conv else None)
    if const is None:
        a = keras.Input(shape, batch_size=batch, name="a")
        b = keras.Input(sb, batch_size=batch, name="b")
        x = pre(a) if pre else a
        y = L.Lambda(lambda t: f(t[0], t[1]))([x, b])
        ins = [a, b]
        data = [{"a": (rng.standard_normal((batch,) + shape) * scale_a).astype(np.float32),
                 "b": (rng.standard_normal((batch,) + sb) * scale_b).astype(np.float32)}
                for _ in range(n_calib)]
    else:
        c = tf.constant((np.random.default_rng(seed + 99).standard_normal(sb) * scale_b).astype(np.float32))
        a = keras.Input(shape, batch_size=batch, name="a")
        x = pre(a) if pre else a
        y = L.Lambda(lambda t: f(t, c) if const == "b" else f(c, t))(x)
        ins = [a]
        data = [[(rng.standard_normal((batch,) + shape) * scale_a).astype(np.float32)]
                for _ in range(n_calib)]
    y = act(y) if act else y
    m = keras.Model(ins if len(ins) > 1 else ins[0], y)
    return convert_int8(m, data, int8_io=int8_io, seed=seed)


_REDUCE = {"max": tf.reduce_max, "min": tf.reduce_min, "sum": tf.reduce_sum}


@_builder
def reduce(kind="max", shape=(4, 4, 8), axes=(1, 2), keepdims=False, conv=True, *, batch=1,
           int8_io=True, seed=0, n_calib=16):
    """One reduction ``kind`` in max, min, sum (REDUCE_MAX, REDUCE_MIN, SUM)
    over ``axes`` (of the batched tensor; int32 constant input) of
    [batch, *shape], after a 1x1 Conv2D when ``conv``.  REDUCE_MAX / MIN keep
    the input quantization; SUM's output is calibrated separately.  (Keras
    GlobalMaxPooling2D is ``kind='max', axes=(1, 2)``.)"""
    _seed(seed)
    shape = tuple(shape)
    ax = tuple(axes)
    fn = _REDUCE[kind]
    pre = (L.Conv2D(shape[-1], 1, kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))
           if conv else None)
    m = _model([shape], lambda x: L.Lambda(lambda t: fn(t, axis=ax, keepdims=keepdims))(pre(x) if pre else x),
               batch)
    return convert_int8(m, _rand_data([(batch,) + shape], n_calib, seed), int8_io=int8_io, seed=seed)


@_builder
def global_max_pool(h=6, w=6, c=8, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """Conv2D 3x3 -> Keras GlobalMaxPooling2D (REDUCE_MAX over axes [1, 2])."""
    _seed(seed)
    m = _model([(h, w, c)], lambda x: L.GlobalMaxPooling2D()(
        L.Conv2D(c, 3, padding="same", kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))(x)),
        batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed), int8_io=int8_io, seed=seed)


@_builder
def batch_matmul(shape_a=(4, 6), shape_b=(6, 5), adj_x=False, adj_y=False, const_b=False, *, batch=1,
                 int8_io=True, seed=0, n_calib=16):
    """``tf.matmul(a, b, transpose_a=adj_x, transpose_b=adj_y)`` of two graph
    inputs ``a`` [batch, *shape_a] and ``b`` [batch, *shape_b] (BATCH_MATMUL
    with adj_x / adj_y); ``const_b``: b is a constant of shape ``shape_b``
    (a weight; broadcast over the batch dimensions) and the graph has one input."""
    _seed(seed)
    shape_a, shape_b = tuple(shape_a), tuple(shape_b)
    rng = np.random.default_rng(seed + 12345)
    a = keras.Input(shape_a, batch_size=batch, name="a")
    if const_b:
        c = tf.constant((np.random.default_rng(seed + 99).standard_normal(shape_b)).astype(np.float32))
        y = L.Lambda(lambda t: tf.matmul(t, c, transpose_a=adj_x, transpose_b=adj_y))(a)
        m = keras.Model(a, y)
        data = [[rng.standard_normal((batch,) + shape_a).astype(np.float32)] for _ in range(n_calib)]
    else:
        b = keras.Input(shape_b, batch_size=batch, name="b")
        y = L.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_a=adj_x, transpose_b=adj_y))([a, b])
        m = keras.Model([a, b], y)
        data = [{"a": rng.standard_normal((batch,) + shape_a).astype(np.float32),
                 "b": rng.standard_normal((batch,) + shape_b).astype(np.float32)} for _ in range(n_calib)]
    return convert_int8(m, data, int8_io=int8_io, seed=seed)


@_builder
def rsqrt(n=64, lo=0.05, hi=4.0, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """One int8 RSQRT (``tf.math.rsqrt``) of a [batch, n] input calibrated on
    uniform [lo, hi] (lo >= 0: the input zero point is -128)."""
    _seed(seed)
    m = _model([(n,)], lambda x: L.Lambda(lambda t: tf.math.rsqrt(t))(x), batch)
    rng = np.random.default_rng(seed + 12345)
    data = [[rng.uniform(lo, hi, (batch, n)).astype(np.float32)] for _ in range(n_calib)]
    return convert_int8(m, data, int8_io=int8_io, seed=seed)


@_builder
def mobilenet_v3_small(size=160, alpha=1.0, minimalistic=False, *, classes=10, include_preprocessing=True,
                       int8_io=True, seed=0, n_calib=8):
    """keras.applications.MobileNetV3Small (weights=None, BN statistics from the
    calibration images as ``_bn_recalibrate``), batch 1, logits out (no SOFTMAX),
    calibrated on uniform [0, 255] images (``include_preprocessing``: x / 127.5 - 1
    as MUL + ADD on the input).  Squeeze-excite blocks (MEAN, 1x1 convs, hard
    sigmoid as MUL, [1,H,W,C] x [1,1,1,C] MUL), HARD_SWISH, residual ADDs.  The
    5x5 depthwise layers need ``size`` >= 160 (a smaller input makes the last
    ones see a feature map smaller than the filter)."""
    _seed(seed)
    rng = np.random.default_rng(seed + 777)
    calib = [[rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)] for _ in range(n_calib)]
    kw = dict(alpha=alpha, minimalistic=minimalistic, weights=None, classes=classes, classifier_activation=None,
              include_preprocessing=include_preprocessing, dropout_rate=0.0)
    mf = keras.applications.MobileNetV3Small(input_shape=(size, size, 3), **kw)
    _bn_recalibrate(mf, [c[0] for c in calib], seed)
    m = keras.applications.MobileNetV3Small(input_tensor=keras.Input((size, size, 3), batch_size=1), **kw)
    m.set_weights(mf.get_weights())
    return convert_int8(m, calib, int8_io=int8_io, seed=seed)


@_builder
def squeeze_excite(h=6, w=6, c=8, ratio=4, hard=True, *, batch=1, int8_io=True, seed=0, n_calib=16):
    """A squeeze-and-excite block after a 3x3 Conv2D (MobileNetV3 style when
    ``hard``: GlobalAveragePooling2D(keepdims) -> Dense(c / ratio, relu) ->
    Dense(c) -> hard_sigmoid -> Multiply with the conv output, a
    [b, h, w, c] x [b, 1, 1, c] MUL; else sigmoid (EfficientNet style)), and
    ``include_preprocessing``-style ``x * s + o`` on the input."""
    _seed(seed)

    def f(x):
        x = L.Lambda(lambda t: t * (1.0 / 127.5) - 1.0)(x)
        y = L.Conv2D(c, 3, padding="same", kernel_initializer=_init(seed), bias_initializer=_init(seed, "b"))(x)
        s = L.GlobalAveragePooling2D(keepdims=True)(y)
        s = L.Dense(max(1, c // ratio), activation="relu", kernel_initializer=_init(seed + 1),
                    bias_initializer=_init(seed + 1, "b"))(s)
        s = L.Dense(c, kernel_initializer=_init(seed + 2), bias_initializer=_init(seed + 2, "b"))(s)
        s = L.Activation("hard_sigmoid" if hard else "sigmoid")(s)
        return L.Multiply()([y, s])

    m = _model([(h, w, 3)], f, batch)
    rng = np.random.default_rng(seed + 12345)
    data = [[rng.uniform(0, 255, (batch, h, w, 3)).astype(np.float32)] for _ in range(n_calib)]
    return convert_int8(m, data, int8_io=int8_io, seed=seed)



# --------------------------------------------------------------------------
# resize, transposed convolution, arg max
# --------------------------------------------------------------------------

@_builder
def resize_bilinear(h=4, w=4, c=3, out_h=8, out_w=8, align_corners=False,
                    half_pixel_centers=False, *, batch=1, int8_io=True, seed=0,
                    n_calib=16):
    """One RESIZE_BILINEAR [batch, h, w, c] -> [batch, out_h, out_w, c]
    (tf.compat.v1.image.resize_bilinear, so both flags can be set; Keras
    UpSampling2D(interpolation="bilinear") is half_pixel_centers=True).  The size
    is an int32 constant input; input and output share scale/zero point."""
    _seed(seed)
    size = (int(out_h), int(out_w))

    def f(x):
        return L.Lambda(lambda t: tf.compat.v1.image.resize_bilinear(
            t, size, align_corners=align_corners,
            half_pixel_centers=half_pixel_centers))(x)
    m = _model([(h, w, c)], f, batch)
    return convert_int8(m, _rand_data([(batch, h, w, c)], n_calib, seed),
                        int8_io=int8_io, seed=seed)


@_builder
def transpose_conv(h=4, w=4, cin=3, cout=4, k=3, stride=2, padding="same",
                   use_bias=True, activation=None, per_tensor=False, *, batch=1,
                   int8_io=True, seed=0, n_calib=16):
    """One Keras Conv2DTranspose -> TRANSPOSE_CONV (inputs: int32 output_shape,
    weights [cout, k, k, cin] per-channel on dimension 0 unless ``per_tensor``,
    the input, and the int32 bias as input 3 when ``use_bias``).  A fused
    ``activation`` ('relu'/'relu6') stays a separate op or is fused, as the
    converter decides."""
    _seed(seed)
    layer = L.Conv2DTranspose(cout, _pair(k), strides=_pair(stride), padding=padding,
                              use_bias=use_bias, kernel_initializer=_init(seed),
                              bias_initializer=_init(seed, "b"))
    return _one_layer(layer, activation, (h, w, cin), batch, int8_io, per_tensor, seed, n_calib)


@_builder
def arg_max(shape=(10,), axis=-1, kind="max", output_type="int64", *, batch=1,
            seed=0, n_calib=16):
    """One ARG_MAX (``kind='min'``: ARG_MIN) of an int8 graph input along
    ``axis`` (of the full shape, batch included; a constant input of the op),
    output int32 or int64 indices (the graph output)."""
    _seed(seed)
    fn = tf.math.argmax if kind == "max" else tf.math.argmin
    ot = tf.int64 if output_type == "int64" else tf.int32
    shape = tuple(shape)
    m = _model([shape], lambda x: L.Lambda(lambda t: fn(t, axis=axis, output_type=ot))(x),
               batch)
    return convert_int8(m, _rand_data([(batch,) + shape], n_calib, seed),
                        int8_io=True, seed=seed)


# --------------------------------------------------------------------------
# uint8 (asymmetric) models
# --------------------------------------------------------------------------

_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _legacy_uint8_params(lo, hi):
    """TF's legacy asymmetric uint8 quantization of a float range: the range is widened
    to contain 0, scale = (max - min) / 255, zero point round(-min / scale) (nudged into
    [0, 255]), so 0.0 is exactly representable."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1e-8
    zp = int(np.clip(np.round(-lo / scale), 0, 255))
    return np.float32(scale), zp


def to_uint8(model_bytes) -> bytes:
    """Rewrite an int8 model (converted with per-tensor weights, ``per_tensor=True``) into
    the legacy full-uint8 scheme of TF's hosted quantized models (the MobileNets the seed
    paper evaluates): asymmetric uint8 activations and uint8 weights with a non-zero zero
    point.  Written directly against the TFLite flatbuffer schema (the schema module TF
    ships, ``tensorflow.lite.python.schema_py_generated``; the ``tflite`` package holds the
    same generated classes): the stock converter no longer emits such graphs from Keras.

    - every int8 activation tensor (graph inputs and outputs included, and QUANTIZE /
      DEQUANTIZE edges) becomes uint8 with value + 128 and zero point + 128, so it
      represents the same reals; constant int8 operands (e.g. a folded ADD operand) too;
    - every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weight tensor is re-quantized
      asymmetrically in uint8 from its float values (min/max -> scale, zero point);
    - its int32 bias is re-quantized to scale in_scale * new_w_scale (float product, as
      TFLite's GetQuantizedConvolutionMultipler checks it).
    Per-channel weights are refused (uint8 kernels take one weight scale)."""
    m = _parse(model_bytes)
    sg = m.subgraphs[0]
    I8, U8 = _fb.TensorType.INT8, _fb.TensorType.UINT8

    def buf_of(ti):
        return m.buffers[sg.tensors[ti].buffer]

    def data_of(ti, dtype):
        b = buf_of(ti)
        if b is None or b.data is None or len(b.data) == 0:
            raise ValueError(f"tensor {ti} has no inline data")
        return np.frombuffer(np.asarray(b.data, np.uint8).tobytes(), dtype).copy()

    def set_data(ti, arr):
        buf_of(ti).data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8).copy()

    done = set()
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        name = _OP_NAME.get(max(oc.builtinCode, oc.deprecatedBuiltinCode))
        if name not in _WEIGHT_OPS:
            continue
        xi, wi = op.inputs[0], op.inputs[1]
        bi = op.inputs[2] if len(op.inputs) > 2 else -1
        w = sg.tensors[wi]
        if w.type != I8:
            raise ValueError(f"{name}: weights of type {_TYPE_NAME.get(w.type)}, expected int8")
        wq = w.quantization
        if len(wq.scale) != 1:
            raise ValueError(f"{name}: per-channel weights (convert with per_tensor=True)")
        old_scale = np.float32(wq.scale[0])
        in_scale = np.float32(sg.tensors[xi].quantization.scale[0])
        if wi not in done:
            wf = (data_of(wi, np.int8).astype(np.float64) - int(wq.zeroPoint[0])) * float(old_scale)
            scale, zp = _legacy_uint8_params(wf.min(), wf.max())
            q = np.clip(np.round(wf / float(scale)) + zp, 0, 255).astype(np.uint8)
            set_data(wi, q)
            w.type = U8
            wq.scale, wq.zeroPoint, wq.quantizedDimension = [float(scale)], [zp], 0
            done.add(wi)
        new_scale = np.float32(wq.scale[0])
        if bi >= 0 and bi not in done:
            b = sg.tensors[bi]
            bf = data_of(bi, np.int32).astype(np.float64) * float(np.float32(in_scale * old_scale))
            bs = np.float32(in_scale * new_scale)
            nb = np.clip(np.round(bf / float(bs)), -2**31, 2**31 - 1).astype(np.int32)
            set_data(bi, nb)
            b.quantization.scale, b.quantization.zeroPoint = [float(bs)], [0]
            b.quantization.quantizedDimension = 0
            done.add(bi)
    for ti, t in enumerate(sg.tensors):
        if t.type != I8 or ti in done:
            continue
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            raise ValueError(f"tensor {ti}: int8 tensor without per-tensor quantization")
        t.type = U8
        q.zeroPoint = [int(q.zeroPoint[0]) + 128]
        b = buf_of(ti) if t.buffer else None
        if b is not None and b.data is not None and len(b.data):
            set_data(ti, (data_of(ti, np.int8).astype(np.int16) + 128).astype(np.uint8))
    return _pack(m)


_UINT8_OPS = {
    "conv2d": lambda kw: conv2d.uncached(**{"per_tensor": True, **kw}),
    "depthwise_conv2d": lambda kw: depthwise_conv2d.uncached(**{"per_tensor": True, **kw}),
    "fully_connected": lambda kw: fully_connected.uncached(**{"per_tensor": True, **kw}),
    "average_pool2d": lambda kw: average_pool2d.uncached(**kw),
    "max_pool2d": lambda kw: max_pool2d.uncached(**kw),
    "mean": lambda kw: mean.uncached(**kw),
    "add": lambda kw: add.uncached(**kw),
    "softmax": lambda kw: softmax.uncached(**kw),
    "reshape": lambda kw: reshape.uncached(**kw),
    "flatten": lambda kw: flatten.uncached(**kw),
    "activation": lambda kw: activation.uncached(**kw),
}


@_builder
def uint8_op(builder, **kwargs):
    """The uint8 variant of a single-op builder (``conv2d``, ``depthwise_conv2d``,
    ``fully_connected`` (per-tensor weights), ``average_pool2d``, ``max_pool2d``, ``mean``,
    ``add``, ``softmax``, ``reshape``, ``flatten``, ``activation``): the int8 model
    rewritten by ``to_uint8`` (uint8 graph I/O, or float I/O with ``int8_io=False``)."""
    return to_uint8(_UINT8_OPS[builder](kwargs))


@_builder
def quantize_int8_uint8(n=256, to="uint8", in_scale=3.0, out_scale=None, out_zero_point=None,
                        *, batch=1, seed=0, n_calib=16):
    """One QUANTIZE inside the graph between int8 and uint8 (``to='uint8'``: int8 input,
    uint8 output; ``to='int8'``: uint8 input, int8 output), a requantization from the
    input's to the output's quantization.  Built from the patched int8 -> int8 QUANTIZE
    model (``activation('quantize')``) by retyping one side, directly in the schema;
    ``out_scale`` / ``out_zero_point`` override the output's (zero point in the output
    type's range; default: the input's reals, i.e. zero point +- 128)."""
    b = activation.uncached("quantize", n=n, in_scale=in_scale, batch=batch, seed=seed,
                            n_calib=n_calib)
    m = _parse(b)
    sg = m.subgraphs[0]
    op = sg.operators[0]
    side = sg.tensors[op.outputs[0] if to == "uint8" else op.inputs[0]]
    side.type = _fb.TensorType.UINT8
    side.quantization.zeroPoint = [int(side.quantization.zeroPoint[0]) + 128]
    q = sg.tensors[op.outputs[0]].quantization
    if out_scale is not None:
        q.scale = [float(out_scale)]
    if out_zero_point is not None:
        q.zeroPoint = [int(out_zero_point)]
    oc = m.operatorCodes[op.opcodeIndex]
    oc.version = 2
    return _pack(m)


@_builder
def mobilenet_v1_uint8(alpha=0.25, size=128, *, include_top=True, classes=1000,
                       classifier_activation="softmax", bn_recalib=True, int8_io=True,
                       seed=0, n_calib=16):
    """``mobilenet_v1`` in the paper's uint8 scheme: converted with per-tensor weights,
    then ``to_uint8`` (uint8 activations and graph I/O, asymmetric uint8 weights);
    ``int8_io=False`` keeps float I/O edges (QUANTIZE / DEQUANTIZE to / from uint8)."""
    return to_uint8(_stock(keras.applications.MobileNet, size, alpha, include_top, classes,
                           classifier_activation, bn_recalib, seed, n_calib, int8_io,
                           per_tensor=True))


def digits_cnn_uint8(pool="max", c1=8, c2=16, epochs=15, *, seed=0, int8_io=True,
                     n_calib=100):
    """``digits_cnn`` in the paper's uint8 scheme (per-tensor conversion, then
    ``to_uint8``).  Returns ``(tflite_bytes, x_test, y_test, float_test_accuracy)``,
    ``x_test`` quantized to uint8 with the model's input quantization (float32 if
    ``int8_io=False``)."""
    params = dict(pool=pool, c1=c1, c2=c2, epochs=epochs, seed=seed,
                  int8_io=int8_io, n_calib=n_calib)
    blob = _cached("digits_cnn_uint8", params,
                   lambda: _digits_blob(pool, c1, c2, epochs, seed, int8_io,
                                        n_calib, per_tensor=True), suffix=".npz")
    z = np.load(io.BytesIO(blob))
    tfl = to_uint8(z["tflite"].tobytes())
    _, x_te, _, y_te = digits_data(seed=0)
    if int8_io:
        x_te = quantize(x_te, input_details(tfl)[0])
    return tfl, x_te, y_te, float(z["float_acc"])



# --------------------------------------------------------------------------
# stock models
# --------------------------------------------------------------------------

def _calib_images(size, n, seed):
    rng = np.random.default_rng(seed + 777)
    return [[rng.uniform(-1.0, 1.0, (1, size, size, 3)).astype(np.float32)]
            for _ in range(n)]


def _bn_recalibrate(model, images, seed):
    """Give a randomly initialised BN network sane activation statistics.

    With weights=None every BatchNormalization is the identity (mean 0, var
    1, gamma 1, beta 0) and the Glorot-initialised convs shrink activations
    ~2-4x per layer: in MobileNetV1 0.25 the activation scales fall to the
    converter's floor (7.8e-9, i.e. all-zero tensors) by the 13th layer, the
    output is constant, and BUILTIN_REF's SOFTMAX even aborts the process
    in Prepare on such a tiny input scale.  So: randomise gamma in
    [0.5, 1.5] and beta in [-0.25, 0.75], set momentum 0 and run the batch
    of calibration images once with training=True, so the moving statistics
    become the batch statistics (data-dependent init).  After BN folding the
    converted conv weights have realistic, varied per-channel scales.
    """
    rng = np.random.default_rng(seed + 4242)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            # InceptionV3 builds BN with scale=False (no gamma); center=False has no beta
            if layer.gamma is not None:
                n = layer.gamma.shape[0]
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            if layer.beta is not None:
                n = layer.beta.shape[0]
                layer.beta.assign(rng.uniform(-0.25, 0.75, n).astype(np.float32))
            layer.momentum = 0.0
    model(np.concatenate(images, axis=0), training=True)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.99


def _stock(app, size, alpha, include_top, classes, classifier_activation,
           bn_recalib, seed, n_calib, int8_io, per_tensor=False, batch=1):
    _seed(seed)
    calib = _calib_images(size, n_calib, seed)
    kw = dict(alpha=alpha, weights=None, include_top=include_top)
    if include_top:
        kw.update(classes=classes, classifier_activation=classifier_activation)
    if bn_recalib:
        # BN statistics need a real batch, the exported model needs batch 1.
        mf = app(input_shape=(size, size, 3), **kw)
        _bn_recalibrate(mf, [c[0] for c in calib], seed)
        weights = mf.get_weights()
    m = app(input_tensor=keras.Input((size, size, 3), batch_size=batch), **kw)
    if bn_recalib:
        m.set_weights(weights)
    if batch != 1:
        # Each calibration sample is one image repeated `batch` times: every tensor's
        # range, hence the quantization, is the batch-1 model's (no op mixes the batch),
        # up to float rounding in the calibration run (0.25/128 with SOFTMAX, batch 8:
        # the classifier conv's output scale is 1 ulp apart; all others identical).
        calib = [[np.repeat(c[0], batch, axis=0)] for c in calib]
    return convert_int8(m, calib, int8_io=int8_io, seed=seed, per_tensor=per_tensor,
                        dense_per_tensor=per_tensor)


@_builder(added=("batch",))
def mobilenet_v1(alpha=0.25, size=128, *, include_top=True, classes=1000,
                 classifier_activation="softmax", bn_recalib=True,
                 int8_io=True, seed=0, n_calib=16, batch=1):
    """keras.applications.MobileNet (weights=None), batch fixed to ``batch`` (default 1),
    int8 I/O, calibrated on ``n_calib`` uniform[-1, 1] random images (each repeated
    ``batch`` times: the quantization is the batch-1 model's, up to float rounding); BN statistics
    re-initialised from the same images (see ``_bn_recalibrate``; pass
    bn_recalib=False for the raw random-init network, whose activations
    vanish).  ``classifier_activation=None`` leaves out the final SOFTMAX
    (logits out); with 1000 classes and random weights nearly all softmax
    outputs quantize to -128, so logits are more informative for tests.

    Ops (alpha 0.25, 128, include_top, TF 2.21), in order: CONV_2D, then 13 x
    (DEPTHWISE_CONV_2D, CONV_2D) all RELU6-fused, MEAN (keepDims), CONV_2D
    (1x1 classifier with bias, no activation; not FULLY_CONNECTED), RESHAPE,
    SOFTMAX: CONV_2D 15, DEPTHWISE_CONV_2D 13, MEAN 1, RESHAPE 1, SOFTMAX 1.
    No PAD: the converter folds ZeroPadding2D(((0,1),(0,1))) + 'valid'
    stride-2 depthwise into SAME padding.  Dropout disappears.
    """
    return _stock(keras.applications.MobileNet, size, alpha, include_top,
                  classes, classifier_activation, bn_recalib, seed, n_calib,
                  int8_io, batch=batch)


@_builder
def mobilenet_v2(alpha=0.35, size=128, *, include_top=True, classes=1000,
                 classifier_activation="softmax", bn_recalib=True,
                 int8_io=True, seed=0, n_calib=16):
    """keras.applications.MobileNetV2 (weights=None), batch 1, int8 I/O; same
    options as ``mobilenet_v1``.

    Ops (alpha 0.35, 128, include_top, TF 2.21): CONV_2D 35,
    DEPTHWISE_CONV_2D 17, ADD 10 (residuals, no fused activation), MEAN 1,
    FULLY_CONNECTED 1 (classifier, per-channel weights), SOFTMAX 1.  Expand
    and depthwise convs are RELU6-fused, project convs have no activation.
    No PAD (ZeroPadding2D folded into SAME), no RESHAPE.
    """
    return _stock(keras.applications.MobileNetV2, size, alpha, include_top,
                  classes, classifier_activation, bn_recalib, seed, n_calib,
                  int8_io)


#: Keras application -> (constructor name, smallest input size it accepts with
#: weights=None and include_top; NASNetMobile's size is fixed at 224).
STOCK_FAMILIES = {
    "MobileNet": ("MobileNet", 32), "MobileNetV2": ("MobileNetV2", 32),
    "MobileNetV3Small": ("MobileNetV3Small", 32), "MobileNetV3Large": ("MobileNetV3Large", 32),
    "EfficientNetB0": ("EfficientNetB0", 32), "EfficientNetV2B0": ("EfficientNetV2B0", 32),
    "ResNet50": ("ResNet50", 32), "ResNet50V2": ("ResNet50V2", 32), "DenseNet121": ("DenseNet121", 32),
    "InceptionV3": ("InceptionV3", 75), "Xception": ("Xception", 71), "NASNetMobile": ("NASNetMobile", 224),
    "VGG16": ("VGG16", 32), "ConvNeXtTiny": ("ConvNeXtTiny", 32),
}


def _he_normal_reinit(model, seed):
    """Re-draw every conv / dense kernel He-normal (fan-in): with the applications'
    default Glorot initialisation deep plain stacks (VGG) shrink activations to a
    handful of quantization levels, and an exact comparison would mean little."""
    rng = np.random.default_rng(seed + 99)
    for layer in model.layers:
        for attr in ("kernel", "depthwise_kernel"):
            w = getattr(layer, attr, None)
            if w is None or not hasattr(w, "assign") or len(w.shape) < 2:
                continue
            shape = tuple(int(d) for d in w.shape)
            if attr == "depthwise_kernel":
                fan_in = shape[0] * shape[1]
            else:
                fan_in = int(np.prod(shape[:-1]))
            w.assign((rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))).astype(np.float32))


@_builder
def stock(family, size=None, *, classes=1000, logits=True, include_preprocessing=False, he_normal=True,
          int8_io=True, seed=0, n_calib=8):
    """A Keras application (``STOCK_FAMILIES``: ``family`` is its constructor name), weights=None,
    batch 1, at ``size`` (default: the smallest it accepts), converted to int8 by the stock
    converter.  ``logits``: no final softmax (with random weights a 1000-way softmax quantizes
    to nearly all -128, and BUILTIN_REF's SOFTMAX aborts on tiny logit scales); ``he_normal``:
    every conv / dense kernel re-drawn He-normal, then the BN statistics re-calibrated on the
    calibration images (``_bn_recalibrate``).  ``include_preprocessing`` for the families that
    take it (MobileNetV3*, EfficientNetV2*): the rescaling runs inside the int8 graph (MUL/ADD
    with constants on the model input).
    """
    if family not in STOCK_FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(STOCK_FAMILIES)}")
    ctor, smallest = STOCK_FAMILIES[family]
    size = size or smallest
    app = getattr(keras.applications, ctor)
    _seed(seed)
    calib = _calib_images(size, n_calib, seed)
    kw = dict(weights=None, include_top=True, classes=classes,
              classifier_activation=None if logits else "softmax")
    if family.startswith(("MobileNetV3", "EfficientNetV2")):
        kw["include_preprocessing"] = include_preprocessing
    elif include_preprocessing:
        raise ValueError(f"{family} has no include_preprocessing option")
    mf = app(input_shape=(size, size, 3), **kw)
    if he_normal:
        _he_normal_reinit(mf, seed)
    _bn_recalibrate(mf, [c[0] for c in calib], seed)
    weights = mf.get_weights()
    m = app(input_tensor=keras.Input((size, size, 3), batch_size=1), **kw)
    m.set_weights(weights)
    return convert_int8(m, calib, int8_io=int8_io, seed=seed)


# --------------------------------------------------------------------------
# digits CNN (trained here, seconds)
# --------------------------------------------------------------------------

def digits_data(test_size=0.25, seed=0):
    """sklearn digits as float32 (N, 8, 8, 1) in [0, 1]; stratified split.
    Returns x_train, x_test, y_train, y_test (default: 1347 / 450 samples)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 8, 8, 1)
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=test_size, random_state=seed,
                            stratify=y)


def _digits_net(batch, pool, c1, c2):
    inp = keras.Input((8, 8, 1), batch_size=batch)
    y = L.Conv2D(c1, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(c2, 3, padding="same", activation="relu")(y)
    y = (L.MaxPooling2D(2) if pool == "max" else L.AveragePooling2D(2))(y)
    y = L.Flatten()(y)
    y = L.Dense(10)(y)
    y = L.Softmax()(y)
    return keras.Model(inp, y)


def _digits_blob(pool, c1, c2, epochs, seed, int8_io, n_calib, per_tensor=False):
    x_tr, x_te, y_tr, y_te = digits_data(seed=0)
    _seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover
        pass
    try:
        m = _digits_net(None, pool, c1, c2)
        m.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x_tr, y_tr, batch_size=32, epochs=epochs, verbose=0,
              shuffle=True)
        float_acc = float(np.mean(np.argmax(m.predict(x_te, verbose=0), 1)
                                  == y_te))
    finally:
        with contextlib.suppress(Exception):
            tf.config.experimental.disable_op_determinism()
    m1 = _digits_net(1, pool, c1, c2)
    m1.set_weights(m.get_weights())
    calib = [[x_tr[i:i + 1]] for i in range(n_calib)]
    tfl = convert_int8(m1, calib, int8_io=int8_io, seed=seed, per_tensor=per_tensor,
                       dense_per_tensor=per_tensor)
    bio = io.BytesIO()
    np.savez(bio, tflite=np.frombuffer(tfl, np.uint8),
             float_acc=np.float64(float_acc))
    return bio.getvalue()


def digits_cnn(pool="max", c1=8, c2=16, epochs=15, *, seed=0, int8_io=True,
               n_calib=100):
    """Small CNN trained on sklearn digits, converted to int8 TFLite.

    Net: Conv3x3x``c1`` relu (same) -> Conv3x3x``c2`` relu (same) ->
    MaxPool2 (``pool='avg'``: AveragePool2) -> Flatten -> Dense 10 ->
    Softmax; batch 1.  TFLite ops: CONV_2D, CONV_2D, MAX_POOL_2D (or
    AVERAGE_POOL_2D), RESHAPE, FULLY_CONNECTED, SOFTMAX.
    Returns ``(tflite_bytes, x_test, y_test, float_test_accuracy)`` where
    ``x_test`` is the 450-sample test split quantized with the model's input
    scale/zero point, int8 (N, 8, 8, 1) (float32 if ``int8_io=False``), and
    feeding ``x_test[i:i+1]`` gives one prediction.  Cached (model + float
    accuracy); training takes a few seconds and is deterministic
    (set_random_seed + op determinism).
    """
    params = dict(pool=pool, c1=c1, c2=c2, epochs=epochs, seed=seed,
                  int8_io=int8_io, n_calib=n_calib)
    blob = _cached("digits_cnn", params,
                   lambda: _digits_blob(pool, c1, c2, epochs, seed, int8_io,
                                        n_calib), suffix=".npz")
    z = np.load(io.BytesIO(blob))
    tfl = z["tflite"].tobytes()
    _, x_te, _, y_te = digits_data(seed=0)
    if int8_io:
        x_te = quantize(x_te, input_details(tfl)[0])
    return tfl, x_te, y_te, float(z["float_acc"])


def classify(model_bytes, xs, **run_kw):
    """argmax of output 0 for each sample ``xs[i:i+1]`` (one invoke each)."""
    it_kw = {k: run_kw.pop(k) for k in ("reference", "delegates", "num_threads")
             if k in run_kw}
    if run_kw:
        raise TypeError(f"unexpected arguments {sorted(run_kw)}")
    it = _interpreter(model_bytes, **it_kw)
    it.allocate_tensors()
    i_idx = it.get_input_details()[0]["index"]
    o_idx = it.get_output_details()[0]["index"]
    preds = np.empty(len(xs), np.int64)
    for i in range(len(xs)):
        it.set_tensor(i_idx, xs[i:i + 1])
        it.invoke()
        preds[i] = int(np.argmax(it.get_tensor(o_idx)[0]))
    return preds
