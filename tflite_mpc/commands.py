"""What `tflite-mpc run`, `eval` and `bench` do (their argparse wiring is in cli.py).

  run    one secure inference beside plaintext TFLite (reference kernels): top-k of each,
         whether they agree, and the cost report
  eval   every sample of a data set through secure and plaintext inference: accuracies,
         top-1 agreement, largest difference, total bytes, rounds and seconds
  bench  secure invoke timings in the manner of TFLite's benchmark_model

Every function takes the model as bytes and delegate options as a dict (protocol,
truncation, network, output_to, or parties + party for distributed mode as the data
owner); files are read by the `read_*` helpers. Interpreters come from the runtime
``tflite_mpc.delegate.default_runtime`` picks (ai_edge_litert first: no TensorFlow import).
Bad input raises ``UsageError`` (the command exits with code 2 and one line).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
import zipfile

import numpy as np

from . import _quiet
from .delegate import default_runtime, interpreter_api, load_delegate, report

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


class UsageError(ValueError):
    """Bad input from the command line (a missing file, a wrong shape): exit code 2."""


# ------------------------------------------------------------------ runtimes
def _runtime(runtime: str | None) -> str:
    name = default_runtime(runtime)
    if name == "tensorflow":
        _quiet.import_tensorflow()  # without its start-up noise
    return name


def _refusal(e: Exception) -> str:
    return str(e).split("\nRestored original execution plan")[0].strip()


def plain_interpreter(model: bytes, runtime: str | None = None, *, reference: bool = True, num_threads: int = 1):
    """Plaintext TFLite: the reference kernels (BUILTIN_REF, the oracle the secure
    result is compared with) or, with reference=False, the default kernels (XNNPACK)."""
    runtime = _runtime(runtime)
    Interpreter, Resolver = interpreter_api(runtime)
    kw = {"experimental_op_resolver_type": Resolver.BUILTIN_REF} if reference else {}
    # without the line "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    with _quiet.filtered_stderr(_quiet.TFLITE_INFO):
        try:
            it = Interpreter(model_content=model, num_threads=num_threads, **kw)
        except ValueError as e:  # not a TFLite model
            raise UsageError(_refusal(e).splitlines()[0]) from None
        it.allocate_tensors()
    return it


def secure_interpreter(model: bytes, options: dict, runtime: str | None = None):
    """(interpreter, delegate): `model` under the tflite-mpc delegate with `options`.
    A bad option raises UsageError; a model the delegate refuses raises RuntimeError
    with the delegate's message (every node that cannot run securely)."""
    runtime = _runtime(runtime)
    Interpreter, _ = interpreter_api(runtime)
    try:
        d = load_delegate(runtime, **options)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        it = Interpreter(model_content=model, experimental_delegates=[d])
        it.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise RuntimeError(_refusal(e)) from None
    return it, d


def session_options(protocol=None, truncation=None, output_to=None, network=None, parties=None, party=None,
                    timeout=None, output=None) -> dict:
    """Delegate options from command-line values, leaving out those not given (in
    distributed mode the party configuration decides protocol, truncation and roles)."""
    opts = {"protocol": protocol, "truncation": truncation, "output_to": output_to, "network": network,
            "timeout": timeout, "output": output}
    if parties is not None or party is not None:
        if parties is None or party is None:
            raise UsageError("distributed mode needs both --parties CONFIG and --party ID")
        if not os.path.exists(parties):
            raise UsageError(f"no such party configuration: {parties}")
        opts.update(parties=parties, party=party)
    return {k: v for k, v in opts.items() if v is not None}


def _config(options: dict) -> dict:
    """The party configuration of distributed mode ({} in local mode or if unreadable:
    the delegate then reports what is wrong)."""
    if "parties" not in options:
        return {}
    try:
        with open(options["parties"]) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def revealed(options: dict) -> tuple[str | None, list[int]]:
    """(what this process learns of the output: "values", "argmax" or None, and the ids
    of the parties the output goes to). Local mode: this process holds every party."""
    cfg = _config(options)
    if "parties" in options:
        roles = cfg.get("roles") if isinstance(cfg.get("roles"), dict) else {}
        to, mode = roles.get("output_to", 0), cfg.get("output", "values")
    else:
        to, mode = options.get("output_to", 0), options.get("output", "values")
    items = to if isinstance(to, (list, tuple)) else str(to).split(",")
    ids = [int(i) for i in items if str(i).strip().lstrip("-").isdigit()]
    receives = "parties" not in options or options.get("party") in ids
    return (mode if receives else None), ids


def describe_session(options: dict) -> str:
    """'protocol rep3, truncation exact, ...' as the session will run (the configuration
    file's values in distributed mode)."""
    shown = dict(options)
    if "parties" in options:
        cfg = _config(options)
        shown = {"protocol": cfg.get("protocol", "rep3"), "truncation": cfg.get("truncation", "probabilistic"),
                 "network": options.get("network", cfg.get("network", "none")),
                 "party": f"{options['party']} of {os.path.basename(options['parties'])}"}
    shown.setdefault("protocol", "rep3")
    shown.setdefault("truncation", "probabilistic")
    shown.setdefault("network", "none")
    return ", ".join(f"{k} {shown[k]}" for k in ("protocol", "truncation", "network", "output", "output_to",
                                                 "party") if k in shown)


# ------------------------------------------------------------------ inputs
def read_model(path: str) -> bytes:
    if not os.path.isfile(path):
        raise UsageError(f"no such model: {path}")
    with open(path, "rb") as f:
        return f.read()


def read_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise UsageError(f"no such labels file: {path}")
    with open(path) as f:
        return [line.strip() for line in f]


def quantize(x, detail) -> np.ndarray:
    """Float values -> the input tensor's type with its scale and zero point (no
    quantization: a cast), rounded half to even and clamped as TFLite's QUANTIZE."""
    dt = np.dtype(detail["dtype"])
    scale, zp = detail["quantization"]
    if not np.issubdtype(dt, np.integer):
        return np.asarray(x, dt)
    if scale == 0:
        raise UsageError(f"input {detail['name']!r} is {dt} without quantization: give {dt} values")
    info = np.iinfo(dt)
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, info.min, info.max).astype(dt)


def dequantize(q, detail) -> np.ndarray:
    scale, zp = detail["quantization"]
    if scale == 0:
        return np.asarray(q, np.float64)
    return (np.asarray(q, np.float64) - zp) * scale


def float_range(detail) -> tuple[float, float] | None:
    """The float values an integer input can represent (None for a float input)."""
    dt = np.dtype(detail["dtype"])
    scale, zp = detail["quantization"]
    if not np.issubdtype(dt, np.integer) or scale == 0:
        return None
    info = np.iinfo(dt)
    return (info.min - zp) * scale, (info.max - zp) * scale


PREPROCESS = {"unit": (0.0, 1.0), "mobilenet": (-1.0, 1.0), "raw": (0.0, 255.0)}


def image_range(detail, preprocess: str = "auto") -> tuple[str, tuple[float, float]]:
    """The float range pixels are scaled to: `preprocess` (unit [0, 1], mobilenet [-1, 1],
    raw [0, 255]) or, with auto, the one the input's quantization covers best (a float
    input: unit)."""
    if preprocess != "auto":
        return preprocess, PREPROCESS[preprocess]
    r = float_range(detail)
    if r is None:
        name = "unit"
    elif r[0] < -0.25:  # e.g. [-1, 1]: MobileNet's preprocessing
        name = "mobilenet"
    elif r[1] > 2.0:  # pixel values
        name = "raw"
    else:
        name = "unit"
    return name, PREPROCESS[name]


def read_image(path: str, detail, preprocess: str = "auto") -> np.ndarray:
    """An image file resized to the input's height and width, its pixels scaled to the
    float range of `preprocess` and quantized as the input says."""
    shape = [int(s) for s in detail["shape"]]
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise UsageError(f"an image needs an NHWC input with 1 or 3 channels; the model's input is {shape}")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading images needs Pillow (pip install pillow), or pass a .npy array") from None
    _, h, w, c = shape
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR)
            pixels = np.asarray(img, np.float64).reshape(1, h, w, c)
    except OSError as e:
        raise UsageError(f"cannot read image {path}: {e}") from None
    _, (lo, hi) = image_range(detail, preprocess)
    x = lo + pixels / 255.0 * (hi - lo)
    return np.repeat(quantize(x, detail), shape[0], axis=0)


def fit_input(a: np.ndarray, detail, what: str = "input") -> np.ndarray:
    """An array as the model's input: the same number of values (reshaped), raw if it has
    the input's type, quantized with the input's scale and zero point if it is float."""
    shape = [int(s) for s in detail["shape"]]
    a = np.asarray(a)
    if a.size != int(np.prod(shape)):
        raise UsageError(f"{what} has shape {list(a.shape)} ({a.size} values); the model's input "
                         f"{detail['name']!r} is {shape} ({int(np.prod(shape))} values)")
    dt = np.dtype(detail["dtype"])
    if a.dtype == dt:
        return a.reshape(shape)
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.bool_):
        return quantize(a.reshape(shape), detail)
    raise UsageError(f"{what} is {a.dtype}; the model's input is {dt}: give {dt} values (used as they are) "
                     f"or float values (quantized with the input's scale and zero point)")


def _load_array(path: str, key: str | None):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # missing, not numpy, truncated
        raise UsageError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        files = list(data.files)
        if not files:
            raise UsageError(f"{path} holds no arrays")
        if key is not None and key not in files:
            raise UsageError(f"{path} has no array {key!r}; it has {', '.join(files)}")
        return data[key if key is not None else files[0]], {k: data[k] for k in files}


def read_input(path: str, detail, key: str | None = None, preprocess: str = "auto") -> np.ndarray:
    """The input tensor from an image (resized and quantized), a .npy array or an .npz
    archive (its first array, or `key`)."""
    if not os.path.isfile(path):
        raise UsageError(f"no such input file: {path}")
    if path.endswith((".npy", ".npz")):
        a, _ = _load_array(path, key)
        return fit_input(a, detail, f"{os.path.basename(path)}" + (f"[{key}]" if key else ""))
    return read_image(path, detail, preprocess)


def _single_input(it):
    ins = it.get_input_details()
    if len(ins) != 1:
        raise UsageError(f"the model has {len(ins)} inputs; run and eval take models with one input "
                         "(bench feeds every input random data)")
    return ins[0]


# ------------------------------------------------------------------ output helpers
def _label(i: int, labels) -> str:
    return labels[i] if labels and 0 <= i < len(labels) else f"class {i}"


def top_k(values, detail, k: int) -> list[tuple[int, float]]:
    """(index, score) of the k largest entries (ties: lowest index first), scores dequantized."""
    v = dequantize(np.asarray(values).reshape(-1), detail)
    idx = np.argsort(-v, kind="stable")[:k]
    return [(int(i), float(v[i])) for i in idx]


def difference(got, want, detail) -> tuple[float, str, int]:
    """(largest difference, unit, number of identical entries): LSB for integer outputs."""
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        diff = np.abs(np.asarray(got, np.int64) - np.asarray(want, np.int64))
        unit = "LSB"
    else:
        diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
        unit = "(float output)"
    return (diff.max().item() if diff.size else 0), unit, int(np.sum(diff == 0))


def _mb(b) -> str:
    return f"{b / 1e6:.2f} MB"


def traffic(parties) -> str:
    return ", ".join(f"P{i} {_mb(p['bytes_sent'])}" for i, p in enumerate(parties))


def weight_sharing(rep) -> dict | None:
    """The first invoke's 'share weights' entry of a report (None after the first)."""
    return next((l for l in (rep or {}).get("layers", []) if l["op"] == "share weights"), None)


# ------------------------------------------------------------------ measurement
def measure(interpreter, inputs, *, runs: int, warmup: int = 0, first: bool = False, delegate=None) -> dict:
    """Set `inputs` (one array per model input), then: one first invoke timed on its own
    (with the delegate, the model owner secret-shares the weights in it) if `first`,
    `warmup` untimed invokes, and `runs` timed ones. Returns {"first_s", "first_report",
    "times", "report"} (reports: tflite_mpc.report(delegate), None without one)."""
    for d, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(d["index"], x)
    out = {"first_s": None, "first_report": None, "times": [], "report": None}
    if first:
        t0 = time.perf_counter()
        interpreter.invoke()
        out["first_s"] = time.perf_counter() - t0
        out["first_report"] = report(delegate) if delegate is not None else None
    for _ in range(warmup):
        interpreter.invoke()
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.invoke()
        out["times"].append(time.perf_counter() - t0)
    out["report"] = report(delegate) if delegate is not None else None
    return out


def _argmax(delegate):
    from .delegate import argmax

    return argmax(delegate)


# ------------------------------------------------------------------ run
def run(model: bytes, x: np.ndarray, options: dict, *, runtime: str | None = None, labels=None, top: int = 5,
        compare: bool | None = None, name: str = "model", out=sys.stdout) -> dict:
    """One secure inference of input `x` beside plaintext TFLite's reference kernels
    (unless compare is False; default: compare in local mode only, where this process
    is assumed to hold the real model). Prints the top-k of each, whether they agree
    and the report; returns {"secure", "plain", "agree", "max_diff", "report"}."""
    distributed = "parties" in options
    if compare is None:
        compare = not distributed
    sec, d = secure_interpreter(model, options, runtime)
    inp, outd = _single_input(sec), sec.get_output_details()[0]
    x = fit_input(x, inp)
    want = t_plain = None
    if compare:
        plain = plain_interpreter(model, runtime)
        p = measure(plain, [x], runs=1)
        want, t_plain = plain.get_tensor(outd["index"]).copy(), p["times"][0]
    m = measure(sec, [x], runs=0, first=True, delegate=d)
    rep = m["first_report"]
    mode, to = revealed(options)
    got = sec.get_tensor(outd["index"]).copy()
    shape = (got.shape[0] if got.ndim > 1 else 1, -1)
    rows_got = got.reshape(shape)
    secure_top1 = ([int(np.argmax(g)) for g in rows_got] if mode == "values" else
                   list(_argmax(d) or []) if mode == "argmax" else None)
    print(f"model: {name}   {describe_session(options)}", file=out)
    if mode is None:
        print(f"the output goes to party {', '.join(map(str, to))}, not to this party ({options.get('party')})",
              file=out)
    rows_want = want.reshape(shape) if want is not None else [None] * len(rows_got)
    k = min(top, rows_got.shape[1])
    for r, (g, w) in enumerate(zip(rows_got, rows_want)):
        cols, heads = [], []
        if mode == "values":
            cols.append([f"{_label(i, labels)[:18]:>18} {v:9.4g}" for i, v in top_k(g, outd, k)])
            heads.append("secure (MPC)")
        elif mode == "argmax":  # only the class is revealed
            cols.append([f"{_label(secure_top1[r], labels)[:18]:>18} {'':>9}"] + [" " * 28] * (k - 1))
            heads.append("secure (MPC, argmax only)")
        if w is not None:
            cols.append([f"{_label(i, labels)[:18]:>18} {v:9.4g}" for i, v in top_k(w, outd, k)])
            heads.append("plaintext TFLite")
        if not cols:
            continue
        if len(rows_got) > 1:
            print(f"batch row {r}:", file=out)
        print(f"{'rank':>4}  " + "  ".join(f"{h:>28}" for h in heads), file=out)
        for i in range(k):
            print(f"{i + 1:>4}  " + "  ".join(c[i] for c in cols).rstrip(), file=out)
    result = {"secure": got if mode == "values" else None, "secure_top1": secure_top1, "plain": want,
              "agree": None, "max_diff": None, "report": rep}
    if want is not None and secure_top1 is not None:
        top1 = [(a, int(np.argmax(w))) for a, w in zip(secure_top1, rows_want)]
        agree = all(a == b for a, b in top1)
        result["agree"] = agree
        shown = ", ".join(f"secure {_label(a, labels)}, plaintext {_label(b, labels)}" for a, b in top1)
        print(f"top-1: {shown}: {'agree' if agree else 'DIFFER'}", file=out)
        if mode == "values":
            diff, unit, same = difference(got, want, outd)
            result["max_diff"] = diff
            print(f"max difference: {diff:.4g} {unit} ({same}/{got.size} outputs identical)", file=out)
    if rep is not None:
        share = weight_sharing(rep)
        line = f"secure inference: {m['first_s'] * 1e3:.1f} ms"
        if share:
            line += f" (of which {share['seconds'] * 1e3:.1f} ms sharing the weights, done once per session)"
        if t_plain is not None:
            line += f"; plaintext TFLite (reference kernels): {t_plain * 1e3:.2f} ms"
        print(line, file=out)
        print(f"bytes sent: {traffic(rep['parties'])}; rounds: {rep['parties'][0]['rounds']}", file=out)
        print(report(d), file=out)
    out.flush()
    del sec, d  # ends the session (distributed mode: goodbye to the other parties)
    return result


# ------------------------------------------------------------------ eval
class Dataset:
    """Samples to evaluate: `x(i)` -> array (or an image path), `y` -> labels or None."""

    def __init__(self, items, y=None, source="", classes=None):
        self.items, self.y, self.source, self.classes = items, y, source, classes

    def __len__(self):
        return len(self.items)


def read_dataset(path: str, key: str | None = None, labels=None) -> Dataset:
    """An .npz with arrays x (or `key`) and optional y, or a directory of images: in
    class-named subfolders (the class is the folder name's line in `labels`, else the
    folder name if it is a number, else its position in sorted order; the samples are
    taken class by class in turn, so --limit keeps the classes balanced) or flat
    (no labels)."""
    if os.path.isdir(path):
        return _image_dir(path, labels)
    if not os.path.isfile(path):
        raise UsageError(f"no such data set: {path}")
    if not path.endswith(".npz"):
        raise UsageError(f"--data takes an .npz file (arrays x and optional y) or a directory of images, "
                         f"not {os.path.basename(path)}")
    _, arrays = _load_array(path, None)
    xk = key or "x"
    if xk not in arrays:
        raise UsageError(f"{path} has no array {xk!r} (it has {', '.join(arrays)}); name the samples' array "
                         "with --key")
    x, y = arrays[xk], arrays.get("y")
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise UsageError(f"{path}: y has {len(y)} labels for {len(x)} samples")
        if not np.issubdtype(y.dtype, np.integer):
            raise UsageError(f"{path}: y must hold integer class indices, not {y.dtype}")
    return Dataset(x, y, os.path.basename(path))


def _image_dir(path: str, labels) -> Dataset:
    entries = sorted(os.listdir(path))
    subdirs = [e for e in entries if os.path.isdir(os.path.join(path, e))]

    def images(d):
        return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.lower().endswith(IMAGE_EXTENSIONS)]

    if not subdirs:
        items = images(path)
        if not items:
            raise UsageError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)}) and no class folders")
        return Dataset(items, None, os.path.basename(os.path.normpath(path)))
    if labels:
        index = {name: i for i, name in enumerate(labels)}
        unknown = [s for s in subdirs if s not in index]
        if unknown:
            raise UsageError(f"class folders not in the labels file: {', '.join(unknown[:5])}")
        cls = {s: index[s] for s in subdirs}
    elif all(s.isdigit() for s in subdirs):
        cls = {s: int(s) for s in subdirs}
    else:
        cls = {s: i for i, s in enumerate(subdirs)}
    per_class = [[(p, cls[s]) for p in images(os.path.join(path, s))] for s in subdirs]
    interleaved = [e for group in _round_robin(per_class) for e in group]
    if not interleaved:
        raise UsageError(f"the class folders of {path} hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    return Dataset([p for p, _ in interleaved], np.array([c for _, c in interleaved]),
                   os.path.basename(os.path.normpath(path)), classes=cls)


def _round_robin(lists):
    for i in range(max(len(l) for l in lists)):
        yield [l[i] for l in lists if i < len(l)]


def evaluate(model: bytes, data: Dataset, options: dict, *, runtime: str | None = None, limit: int | None = None,
             preprocess: str = "auto", compare: bool | None = None, progress: bool = True, as_json: bool = False,
             name: str = "model", out=sys.stdout) -> dict:
    """Every sample (the first `limit`) through secure inference and plaintext TFLite's
    reference kernels (unless compare is False; default: in local mode only), with one
    interpreter each for all samples (the weights are secret-shared once). Prints
    accuracies (with labels), top-1 agreement, the largest difference and the total
    cost; returns them as a dict (the --json line)."""
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise UsageError("no samples to evaluate")
    mode, to = revealed(options)
    if mode is None:
        raise UsageError(f"the output goes to party {', '.join(map(str, to))}, not to this party "
                         f"({options.get('party')}): nothing to evaluate here")
    if compare is None:
        compare = "parties" not in options
    sec, d = secure_interpreter(model, options, runtime)
    plain = plain_interpreter(model, runtime) if compare else None
    inp, outd = _single_input(sec), sec.get_output_details()[0]
    batch = int(inp["shape"][0])
    if batch != 1:
        raise UsageError(f"eval feeds one sample per invoke; the model's batch size is {batch}")

    def sample(i):
        item = data.items[i]
        if isinstance(item, str):
            return read_image(item, inp, preprocess)
        return fit_input(item, inp, f"sample {i}")

    try:
        from tqdm import tqdm
    except ImportError:  # no progress bar
        def tqdm(it, **_):
            return it

    preds = {"secure": np.empty(n, np.int64), "plain": np.empty(n, np.int64)}
    max_diff, same, unit = 0, 0, "LSB"
    sent, rounds, secure_s, plain_s, share = None, 0, 0.0, 0.0, None
    bar = tqdm(range(n), desc="secure inference", unit="img", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    for i in bar:
        x = sample(i)
        s = measure(sec, [x], runs=1, delegate=d)
        secure_s += s["times"][0]
        got = sec.get_tensor(outd["index"])
        preds["secure"][i] = int(np.argmax(got)) if mode == "values" else _argmax(d)[0]
        if compare:
            p = measure(plain, [x], runs=1)
            plain_s += p["times"][0]
            want = plain.get_tensor(outd["index"])
            preds["plain"][i] = int(np.argmax(want))
            if mode == "values":
                diff, unit, eq = difference(got, want, outd)
                max_diff, same = max(max_diff, diff), same + (eq == got.size)
        rep = s["report"]
        share = share or weight_sharing(rep)
        step = np.array([p_["bytes_sent"] for p_ in rep["parties"]], np.int64)
        sent = step if sent is None else sent + step
        rounds += rep["parties"][0]["rounds"]
    getattr(bar, "close", lambda: None)()
    res = {"model": name, "data": data.source, "samples": n, **_session_json(options),
           "secure_s": round(secure_s, 4), "images_per_s": round(n / secure_s, 3) if secure_s else None,
           "bytes_sent_by_party": [int(b) for b in sent], "rounds": int(rounds),
           "weight_sharing_bytes": max(p_["bytes_sent"] for p_ in share["parties"]) if share else 0}
    agree = int(np.sum(preds["secure"] == preds["plain"]))
    if compare:
        res.update(top1_agreement=agree / n, plain_s=round(plain_s, 5))
        if mode == "values":
            res.update(max_diff=max_diff, max_diff_unit=unit, identical_outputs=same)
    if data.y is not None:
        y = data.y[:n]
        res["secure_accuracy"] = float(np.mean(preds["secure"] == y))
        if compare:
            res["plain_accuracy"] = float(np.mean(preds["plain"] == y))
    if as_json:
        print(json.dumps(res), file=out)
    else:
        print(f"model: {name}   data: {data.source} ({n} samples)   {describe_session(options)}", file=out)
        if data.y is not None:
            print(f"accuracy: secure {res['secure_accuracy']:.2%}" +
                  (f"   plaintext TFLite {res['plain_accuracy']:.2%}" if compare else ""), file=out)
        if compare:
            print(f"top-1 agreement: {agree / n:.2%} ({agree}/{n})", file=out)
        if compare and mode == "values":
            print(f"max difference: {max_diff:.4g} {unit} ({same}/{n} samples with identical outputs)", file=out)
        print(f"secure: {secure_s:.2f} s ({n / secure_s:.1f} images/s)" +
              (f"; plaintext TFLite (reference kernels): {plain_s:.3f} s" if compare else ""), file=out)
        per = ", ".join(f"P{i} {_mb(b)}" for i, b in enumerate(sent))
        print(f"bytes sent: {per} ({_mb(max(sent) / n)} per sample at most); rounds: {rounds} "
              f"({rounds / n:.0f} per sample)", file=out)
    out.flush()
    del sec, d
    return res


def _session_json(options: dict) -> dict:
    return {k: options[k] for k in ("protocol", "truncation", "network", "output") if k in options} | (
        {"distributed": True} if "parties" in options else {})


# ------------------------------------------------------------------ bench
def random_inputs(details, seed: int = 0) -> list[np.ndarray]:
    """Uniform integers over each integer input's range, N(0, 1) for a float input."""
    rng = np.random.default_rng(seed)
    res = []
    for det in details:
        dt = np.dtype(det["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            res.append(rng.integers(info.min, info.max, size=det["shape"], endpoint=True).astype(dt))
        else:
            res.append(rng.standard_normal(det["shape"]).astype(dt))
    return res


def bench(model: bytes, options: dict, *, runtime: str | None = None, warmup: int = 1, runs: int = 10,
          inputs=None, plain_runs: int | None = None, as_json: bool = False, name: str = "model",
          out=sys.stdout) -> dict:
    """Time secure invokes as TFLite's benchmark_model does: the first invoke (which
    also secret-shares the weights) on its own, `warmup` untimed, `runs` timed (min,
    median, max), beside plaintext TFLite's default kernels on one thread. Prints the
    figures (or one JSON line) and returns them."""
    if runs < 1 or warmup < 0:
        raise UsageError("--runs must be >= 1 and --warmup >= 0")
    sec, d = secure_interpreter(model, options, runtime)
    x = inputs if inputs is not None else random_inputs(sec.get_input_details())
    plain = plain_interpreter(model, runtime, reference=False)
    p = measure(plain, x, runs=plain_runs or max(20, runs), warmup=1)
    m = measure(sec, x, runs=runs, warmup=warmup, first=True, delegate=d)
    rep, share = m["report"], weight_sharing(m["first_report"])
    t, plain_s = m["times"], statistics.median(p["times"])
    res = {"model": name, **_session_json(options), "warmup": warmup, "runs": runs,
           "first_invoke_s": round(m["first_s"], 4), "min_s": round(min(t), 4),
           "median_s": round(statistics.median(t), 4), "max_s": round(max(t), 4),
           "mean_s": round(statistics.fmean(t), 4),
           "bytes_sent_by_party": [p_["bytes_sent"] for p_ in rep["parties"]],
           "bytes_per_party": max(p_["bytes_sent"] for p_ in rep["parties"]),
           "rounds": rep["parties"][0]["rounds"], "depth": max(p_.get("depth", 0) for p_ in rep["parties"]),
           "weight_sharing_bytes": max(p_["bytes_sent"] for p_ in share["parties"]) if share else 0,
           "network": rep.get("network"),
           "plain_s": round(plain_s, 6), "secure_over_plain": round(statistics.median(t) / plain_s, 1)}
    if as_json:
        print(json.dumps(res), file=out)
    else:
        print(f"model: {name}   {describe_session(options)}", file=out)
        print(f"first invoke (the model owner also secret-shares the weights): {res['first_invoke_s']:.4f} s", file=out)
        print(f"warmup runs: {warmup}", file=out)
        print(f"secure invoke, {runs} runs: min {res['min_s']:.4f} s   median {res['median_s']:.4f} s   "
              f"max {res['max_s']:.4f} s", file=out)
        print(f"plaintext TFLite (default kernels, 1 thread): median {plain_s:.6f} s   "
              f"secure / plaintext: {res['secure_over_plain']}x", file=out)
        print(f"bytes sent per invoke: {traffic(rep['parties'])}", file=out)
        print(f"rounds per invoke: {res['rounds']}" + (f" (message depth {res['depth']})" if res["depth"] else ""),
              file=out)
    out.flush()
    del sec, d
    return res
