"""Loading the tflite-mpc delegate into a TFLite interpreter.

The native library `tflite_mpc._native` is both this package's Python
extension and a TFLite external-delegate plugin, so it can be passed to each
runtime's own loader::

    delegate = tf.lite.experimental.load_delegate(tflite_mpc.library_path(),
                                                  {"protocol": "rep3", "truncation": "exact"})
    interpreter = tf.lite.Interpreter(model_path="model.tflite", experimental_delegates=[delegate])

or, for whichever runtime is installed, ``tflite_mpc.load_delegate(truncation="exact")``.
"""
from __future__ import annotations

import importlib

from . import _native

#: option -> (default, description); values are strings on TFLite's plugin interface.
OPTIONS = {
    "protocol": ("rep3", "MPC protocol: rep3 (3-party replicated secret sharing, semi-honest, honest majority)"),
    "truncation": ("probabilistic", "probabilistic (within 1 LSB per op) or exact (bit-identical to TFLite's "
                                    "reference kernels)"),
    "data_owner": ("0", "party that supplies the input"),
    "model_owner": ("1", "party that supplies the weights and biases"),
    "output_to": ("0", "party or parties that receive the output: 0, 1, 2 or a list of distinct ids, "
                       "e.g. [0, 2] (\"0,2\")"),
    "fc_rounding": ("auto", "FULLY_CONNECTED requantization in exact mode, as the runtime's reference "
                            "kernel does it: single (TF 2.21, LiteRT 2.3), double (tflite-runtime 2.14), or "
                            "auto: double under tflite-runtime, single otherwise"),
    "timeout": ("120", "seconds a party waits for a peer before failing"),
    "output": ("values", "values (the output tensors) or argmax: for a classifier with one [batch, classes] "
                         "output, reveal only each row's argmax; the output tensor then holds a one-hot "
                         "(float: 0/1; int8: -128/127; uint8: 0/255) and tflite_mpc.argmax(delegate) the indices"),
    "debug_checks": ("false", "INSECURE debugging aid: reveal intermediate values to check bit widths "
                              "(local mode only; refused in distributed mode)"),
}

_RUNTIMES = (
    ("tensorflow", "tensorflow", "lite.experimental.load_delegate"),
    ("ai_edge_litert", "ai_edge_litert.interpreter", "load_delegate"),
    ("tflite_runtime", "tflite_runtime.interpreter", "load_delegate"),
)


def library_path() -> str:
    """Path of the delegate plugin (usable with any runtime's load_delegate)."""
    return _native.__file__


def _stringify(options: dict) -> dict:
    out = {}
    for k, v in options.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            # output_to=[0, 2] -> "0,2"; the plugin validates every entry (no bools, no floats)
            v = ",".join("true" if x is True else "false" if x is False else str(x) for x in v)
        out[str(k)] = str(v)
    return out


def validate_options(options: dict) -> dict:
    """Raise ValueError (listing the valid options) for an unknown key or bad value."""
    opts = _stringify(options)
    _native.validate_options(opts)
    return opts


def load_delegate(runtime: str | None = None, **options):
    """Load the delegate with the given options for `runtime` ("tensorflow",
    "ai_edge_litert", "tflite_runtime"), or the first one installed."""
    opts = validate_options(options)
    errors = []
    for name, module, fn in _RUNTIMES:
        if runtime not in (None, name):
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        for attr in fn.split("."):
            mod = getattr(mod, attr)
        return mod(library_path(), opts)
    if runtime is not None and runtime not in [r[0] for r in _RUNTIMES]:
        raise ValueError(f"unknown runtime {runtime!r}; valid: tensorflow, ai_edge_litert, tflite_runtime")
    raise ImportError("no TFLite runtime found (install tensorflow, ai-edge-litert or tflite-runtime): "
                      + "; ".join(errors))


def _handle(delegate):
    if delegate is None:
        return None
    get = getattr(delegate, "_get_native_delegate_pointer", None)
    if get is None:
        raise TypeError("expected a delegate returned by load_delegate")
    return int(get())


def report(delegate=None) -> dict | None:
    """Cost of the last invoke() run with `delegate` (default: the last run of any):
    {"seconds", "parties": [per party {bytes_sent, bytes_recv, rounds, seconds}],
     "layers": [{"node", "op", "seconds", "parties": [...]}, ...]}."""
    return _native.delegate_report(_handle(delegate))


def argmax(delegate=None) -> list[int] | None:
    """With the option output=argmax: the index of each row's maximum revealed by the last
    invoke() run with `delegate` (ties to the lowest index, as TFLite's ARG_MAX), or None
    in a process that received no output."""
    r = report(delegate)
    return None if r is None else r.get("argmax")
