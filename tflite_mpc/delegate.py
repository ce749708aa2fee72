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
import importlib.util

from . import _native
from .report import Report

#: option -> (default, description); values are strings on TFLite's plugin interface.
OPTIONS = {
    "protocol": ("rep3", "MPC protocol: rep3 (3-party replicated secret sharing, semi-honest, honest majority) or mal3 "
                 "(the same sharing, security with abort against one malicious party: every message proven "
                 "before anything is opened; much slower so far)"),
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
    "network": ("none", "emulated network between the parties (local mode; distributed mode: this party's "
                        "outgoing links): none, lan (0.1 ms RTT, 10 Gbit/s), regional (2 ms RTT, 1 Gbit/s) or "
                        "wan (40 ms RTT, 100 Mbit/s)"),
    "latency_ms": ("", "emulated one-way delay per message in ms (>= 0); overrides the network profile's"),
    "bandwidth_mbps": ("", "emulated bandwidth per link and direction in Mbit/s (> 0; 0: unlimited); "
                           "overrides the network profile's"),
    "estimate": ("false", "true: run no MPC; each invoke() estimates the costs (bytes, rounds, seconds per layer "
                          "and party, report(delegate)[\"estimated\"] is True); the outputs are those of all-zero shares, "
                          "not a result: "
                          "what `tflite-mpc inspect` uses (local mode only)"),
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
    return _first_installed(_RUNTIMES, runtime)(library_path(), opts)


def _first_installed(table, runtime):
    """The attribute (dotted path) of the first installed runtime of `table` (or of `runtime`)."""
    errors = []
    for name, module, attr_path in table:
        if runtime not in (None, name):
            continue
        try:
            obj = importlib.import_module(module)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        for attr in attr_path.split("."):
            obj = getattr(obj, attr)
        return obj
    if runtime is not None and runtime not in [r[0] for r in table]:
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


def report(delegate=None) -> Report | None:
    """Cost of the last invoke() run with `delegate` (default: the last run of any), or None:
    a `tflite_mpc.report.Report`, a dict {"seconds", "parties": [per party {bytes_sent,
    bytes_recv, rounds, depth, bytes_sent_to, seconds}], "layers": [{"node", "op", "shape",
    "seconds", "parties": [...]}, ...], ...} that prints as a table per layer and party."""
    r = _native.delegate_report(_handle(delegate))
    return None if r is None else Report(r)


def argmax(delegate=None) -> list[int] | None:
    """With the option output=argmax: the index of each row's maximum revealed by the last
    invoke() run with `delegate` (ties to the lowest index, as TFLite's ARG_MAX), or None
    in a process that received no output."""
    r = report(delegate)
    return None if r is None else r.get("argmax")


_INTERPRETERS = (
    ("ai_edge_litert", "ai_edge_litert.interpreter", "Interpreter"),
    ("tensorflow", "tensorflow", "lite.Interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter", "Interpreter"),
)


_RESOLVERS = (
    ("ai_edge_litert", "ai_edge_litert.interpreter", "OpResolverType"),
    ("tensorflow", "tensorflow", "lite.experimental.OpResolverType"),
    ("tflite_runtime", "tflite_runtime.interpreter", "OpResolverType"),
)


def default_runtime(runtime: str | None = None) -> str | None:
    """`runtime` if given, else the first installed of ai_edge_litert, tensorflow and
    tflite_runtime (None if none is: loading then says what to install)."""
    if runtime is not None:
        return runtime
    return next((name for name, module, _ in _INTERPRETERS if importlib.util.find_spec(module.split(".")[0])), None)


def interpreter_api(runtime: str | None = None):
    """(Interpreter class, OpResolverType) of `runtime` (default: default_runtime()); pair
    the interpreter with ``load_delegate(runtime, ...)`` of the same runtime."""
    runtime = default_runtime(runtime)
    return _first_installed(_INTERPRETERS, runtime), _first_installed(_RESOLVERS, runtime)


class CheckResult(list):
    """Verdict per node of a model (execution order): dicts with ``node``, ``op``,
    ``status`` (``secure``: a secure kernel or an edge step runs it; ``public``: it
    computes on public data only, e.g. shape arithmetic, and stays with TFLite;
    ``refused``: it reads secret data and cannot run securely) and ``detail``.
    ``accepted`` is True when no node is refused; ``message`` is the delegate's
    refusal message (empty if accepted)."""

    def __init__(self, nodes, message=""):
        super().__init__(nodes)
        self.message = message

    @property
    def accepted(self) -> bool:
        return not self.refused

    @property
    def refused(self) -> list:
        return [n for n in self if n["status"] == "refused"]

    def __str__(self):
        w = max([len(n["op"]) for n in self] + [2])
        lines = [f"{'node':>5}  {'op':<{w}}  {'status':<8}  detail"]
        for n in self:
            lines.append(f"{n['node']:>5}  {n['op']:<{w}}  {n['status']:<8}  {n['detail']}")
        secure = sum(n["status"] == "secure" for n in self)
        public = sum(n["status"] == "public" for n in self)
        lines.append(f"{len(self)} nodes: {secure} secure, {public} public, {len(self.refused)} refused"
                     + (" -> the model is accepted" if self.accepted else " -> the model is refused"))
        return "\n".join(lines)


def check(model, runtime: str | None = None, **options) -> CheckResult:
    """Which nodes of `model` (a path or the model's bytes) would run securely, stay
    public, or make the model refused (every refused node, with its reason), without
    running any MPC: the delegate builds its plan exactly as it would for inference.
    `options` are delegate options (they can change the verdict, e.g. fc_rounding)."""
    opts = dict(options)
    if "parties" in opts or "party" in opts:
        # an accepted model would start a distributed session (connect to the other parties)
        raise ValueError("check() runs no MPC session: leave out the options 'parties' and 'party' "
                         "(the verdict is the same in local mode)")
    opts.setdefault("timeout", 5)
    runtime = default_runtime(runtime)  # the delegate and the interpreter of one runtime
    delegate = load_delegate(runtime, **opts)
    if isinstance(model, (bytes, bytearray)):
        kw = {"model_content": bytes(model)}
    else:
        kw = {"model_path": str(model)}
    interpreter = _first_installed(_INTERPRETERS, runtime)
    message = ""
    try:
        interpreter(experimental_delegates=[delegate], **kw)
    except (RuntimeError, ValueError) as e:
        message = str(e).split("\nRestored original execution plan")[0]
    nodes = _native.delegate_last_check()
    if message and not any(n["status"] == "refused" for n in nodes):
        # refused before any node was judged (malformed model): report it as such
        nodes = [{"node": -1, "op": "(model)", "status": "refused", "detail": message}]
    return CheckResult(nodes, message)
