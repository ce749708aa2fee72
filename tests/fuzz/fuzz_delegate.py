#!/usr/bin/env python3
"""Fuzz the tflite-mpc delegate with mutated .tflite files through a real TFLite
interpreter (atheris drives the mutations; see tests/fuzz/README.md).

    python tests/fuzz/fuzz_delegate.py CORPUS_DIR [-max_total_time=600 -seed=1 ...]
    python tests/fuzz/fuzz_delegate.py --repro FILE.tflite     # re-check one input

Every input is run in a worker process (the fuzzer itself never loads TFLite), in
two stages: first by TFLite alone (BUILTIN_REF kernels), then with the delegate
(local mode, truncation=exact, BUILTIN_REF for the nodes it leaves to TFLite).
Expected: both succeed with bit-identical outputs, or the delegate run raises a
Python exception (ValueError / RuntimeError). A bug of ours is:
  crash / hang   the worker dies or stalls in the delegate stage (not in TFLite's own
                 stage) and does so again, alone, in a fresh process;
  mismatch       both runs succeed but the outputs differ (shape, dtype or any bit);
  accepts-invalid the delegate run succeeds on a model TFLite alone refuses;
  exception      the delegate run raises something other than ValueError/RuntimeError;
  plaintext      a node reading secret data (a graph input, a non-integer constant or
                 anything computed from them; SHAPE excepted) was not run by the delegate.
Inputs that crash or hang TFLite alone are TFLite's problem: counted, not reported.

Mutations: libFuzzer's byte mutations (atheris.Mutate) and, half of the time, a
structure-aware mutator working on the flatbuffer schema objects (tensor shapes,
types, quantization, op codes, builtin options, tensor indices, buffers, graph
inputs/outputs, constant values).

Options of our own (before the libFuzzer flags): --artifacts DIR (bugs and TFLite's
own crashes are saved there), --stats FILE (running counters as JSON), --stop-on-bug.
"""
import hashlib
import importlib.util
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

DELEGATE_TIMEOUT = 20      # the delegate's own `timeout` option (seconds a party waits)
STAGE_TIMEOUT = 60         # worker silent this long in one stage: a hang candidate
CONFIRM_TIMEOUT = 180      # the same input alone in a fresh process: a hang if it is still running
WORKER_MEM = 6 << 30       # address-space limit of a worker (huge shapes fail instead of swapping)
MAX_LEN = 1 << 16

# ----------------------------------------------------------------------------- worker (TFLite side)


def _worker_main():
    """Read [u32 length][u32 seed][u8 stages][model] requests from stdin; report each
    stage on stdout as a JSON line: {"stage": s} before it runs, {"done": s, ...} after."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEM, WORKER_MEM))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.append(ROOT)  # after $PYTHONPATH and site-packages: an installed tflite_mpc wins
    import warnings
    warnings.simplefilter("ignore")
    import numpy as np
    import tensorflow as tf
    import tflite_mpc
    from tensorflow.lite.python import schema_py_generated as fb

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything TFLite prints goes to stderr, never into the protocol
    stdin = sys.stdin.buffer

    def say(**kw):
        out.write(json.dumps(kw) + "\n")
        out.flush()

    def run(model, seed, delegate):
        dels = [tflite_mpc.load_delegate(truncation="exact", timeout=DELEGATE_TIMEOUT)] if delegate else None
        it = tf.lite.Interpreter(model_content=model, experimental_delegates=dels, num_threads=1,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        rng = np.random.default_rng(seed)
        for d in it.get_input_details():
            dt = np.dtype(d["dtype"])
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(dt)
            elif np.issubdtype(dt, np.floating):
                x = (rng.standard_normal(d["shape"]) * 4).astype(dt)
            elif dt == np.bool_:
                x = rng.integers(0, 2, size=d["shape"]).astype(dt)
            else:
                raise TypeError(f"harness: no random data for input dtype {dt}")
            it.set_tensor(d["index"], x)
        it.invoke()
        outs = [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
        layers = tflite_mpc.report(dels[0])["layers"] if delegate and tflite_mpc.report(dels[0]) else []
        ops = None
        if not delegate:
            try:
                ops = it._get_ops_details()
            except Exception:  # noqa: BLE001 - e.g. a tensor name that is not UTF-8: no taint check
                pass
        return outs, layers, ops

    def plaintext_secret_nodes(model, ops, delegated):
        """Nodes that read secret data but were not run by the delegate (ops: node list of
        the delegate-free interpreter; delegated: node indices in the delegate's report)."""
        m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
        sg = m.subgraphs[0]
        secret = set()
        for i, t in enumerate(sg.tensors):
            buf = m.buffers[t.buffer] if 0 < t.buffer < len(m.buffers) else None
            const = buf is not None and buf.data is not None and len(buf.data) > 0
            # as the delegate sees it: a graph input backed by data is a constant (integer
            # constants are public shapes and axes); variable tensors are secret
            if (const and t.type not in (fb.TensorType.INT32, fb.TensorType.INT64)) or t.isVariable or \
                    (not const and i in set(int(j) for j in sg.inputs)):
                secret.add(i)
        bad = []
        for n, op in enumerate(ops):
            ins = [int(t) for t in op["inputs"] if t >= 0]
            if op["op_name"] == "SHAPE" or not secret.intersection(ins):
                continue
            secret.update(int(t) for t in op["outputs"] if t >= 0)
            if n not in delegated:
                bad.append(f"node {n} ({op['op_name']})")
        return bad

    while True:
        head = stdin.read(9)
        if len(head) < 9:
            return
        n, seed, stages = struct.unpack("<IIB", head)
        model = stdin.read(n)
        ref = None
        for stage, delegate in (("ref", False), ("mpc", True)):
            if not stages & (1 if stage == "ref" else 2):
                continue
            say(stage=stage)
            try:
                outs, layers, ops = run(model, seed, delegate)
            except Exception as e:  # noqa: BLE001 - classified by the parent
                say(done=stage, ok=False, exc=type(e).__name__, msg=str(e)[-400:])
                continue
            if not delegate:
                ref = (outs, ops)
                say(done=stage, ok=True)
                continue
            res = dict(done=stage, ok=True)
            if ref is not None:
                want, ops = ref
                ops = ops or []
                diff = None
                if len(want) != len(outs):
                    diff = f"{len(outs)} outputs, reference {len(want)}"
                for k, (g, w) in enumerate(zip(outs, want)):
                    if diff is None and (g.shape != w.shape or g.dtype != w.dtype):
                        diff = f"output {k}: {g.dtype}{g.shape}, reference {w.dtype}{w.shape}"
                    elif diff is None and g.tobytes() != w.tobytes():
                        nz = np.flatnonzero(g.reshape(-1).view(np.uint8) != w.reshape(-1).view(np.uint8))
                        diff = f"output {k}: {nz.size} bytes differ, first at byte {int(nz[0])}"
                res["diff"] = diff
                try:
                    res["plaintext"] = plaintext_secret_nodes(model, ops, {int(l["node"]) for l in layers})
                except Exception as e:  # noqa: BLE001 - a model TFLite accepts but Python cannot parse
                    res["plaintext"] = []
                    res["parse_error"] = str(e)[:200]
            say(**res)
        say(end=True)


# ----------------------------------------------------------------------------- parent (fuzzer side)


class Worker:
    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        self.buf = b""

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except OSError:
            pass
        self.p.wait()

    def _line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return "timeout"
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 16)
                if not chunk:
                    return "died"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def check(self, model, seed, stages=3, timeout=STAGE_TIMEOUT):
        """-> {"ref": result, "mpc": result}; a result is a done-dict, or
        {"crash": "died"|"timeout"} for the stage that never finished (then the worker is gone)."""
        try:
            self.p.stdin.write(struct.pack("<IIB", len(model), seed, stages) + model)
            self.p.stdin.flush()
        except BrokenPipeError:
            return {"ref": {"crash": "died"}}
        res, stage = {}, None
        while True:
            msg = self._line(timeout if stage else 600)  # the first request also waits for TF's import
            if isinstance(msg, str):
                self.kill()
                res[stage or "ref"] = {"crash": msg, "signal": -self.p.returncode if self.p.returncode else None}
                return res
            if "stage" in msg:
                stage = msg["stage"]
            elif "done" in msg:
                res[msg["done"]] = msg
            elif msg.get("end"):
                return res


def _sha(b):
    return hashlib.sha1(b).hexdigest()[:16]


def verdict(res):
    """(kind, detail) of one checked input; kind None = fine, 'tflite-*' = TFLite's own."""
    ref, mpc = res.get("ref"), res.get("mpc")
    if ref and "crash" in ref:
        return "tflite-" + ("hang" if ref["crash"] == "timeout" else "crash"), str(ref)
    if mpc is None:
        return None, "not run"
    if "crash" in mpc:
        return ("hang" if mpc["crash"] == "timeout" else "crash"), str(mpc)
    if not mpc["ok"]:
        if mpc["msg"].startswith("harness:"):
            return None, "refused"  # an input dtype the harness cannot fill (e.g. string): not run
        if ref is not None and not ref["ok"] and ref["exc"] == mpc["exc"]:
            return None, "refused"  # TFLite's own Python wrapper fails alike (huge array, bad name)
        if mpc["exc"] not in ("ValueError", "RuntimeError"):
            return "exception", f"{mpc['exc']}: {mpc['msg']}"
        return None, "refused"
    if ref is not None and not ref["ok"]:
        # TFLite's harness-level refusal (no random data for a dtype) says nothing about the model
        if not ref["msg"].startswith("harness:"):
            return "accepts-invalid", f"TFLite alone: {ref['exc']}: {ref['msg']}"
    if mpc.get("diff"):
        return "mismatch", mpc["diff"]
    if mpc.get("plaintext"):
        return "plaintext", ", ".join(mpc["plaintext"])
    return None, "ok" if ref is not None else "ok (delegate only)"


# Coverage feedback. Neither TFLite nor the delegate is instrumented (they run in the
# worker), so each distinct outcome (stage results, exception type, the refusal message
# with its numbers blanked) calls one of many tiny instrumented functions: an input with
# an outcome never seen before covers a new function and joins libFuzzer's corpus.
_FEEDBACK = []


def _feedback_functions(n=4096):
    import atheris
    ns = {}
    exec("\n".join(f"def f{i}():\n    return {i}" for i in range(n)), ns)
    return [atheris.instrument_func(ns[f"f{i}"]) for i in range(n)]


def outcome_key(res):
    parts = []
    for stage in ("ref", "mpc"):
        r = res.get(stage)
        if r is None:
            parts.append("-")
        elif "crash" in r:
            parts.append("crash")
        elif r["ok"]:
            parts.append("ok" + ("/diff" if r.get("diff") else ""))
        else:
            msg = r["msg"]
            k = msg.find("securely:")
            msg = msg[k:] if k >= 0 else msg
            parts.append(r["exc"] + ":" + re.sub(r"-?\d[\d.e+-]*|'[^']*'", "#", msg)[:100])
    return "|".join(parts)


def feedback(res):
    if _FEEDBACK:
        key = outcome_key(res)
        _FEEDBACK[int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % len(_FEEDBACK)]()


class Harness:
    def __init__(self, artifacts, stats_path=None, stop_on_bug=False):
        self.artifacts = artifacts
        os.makedirs(artifacts, exist_ok=True)
        self.stats_path = stats_path
        self.stop_on_bug = stop_on_bug
        self.worker = None
        self.stats = {"iterations": 0, "ok": 0, "refused": 0, "tflite_crashes": 0, "tflite_hangs": 0,
                      "flaky": 0, "bugs": 0, "bug_files": [], "started": time.time()}
        self.last_write = 0.0

    def _save(self, prefix, data, info):
        name = os.path.join(self.artifacts, f"{prefix}-{_sha(data)}")
        with open(name + ".tflite", "wb") as f:
            f.write(data)
        with open(name + ".json", "w") as f:
            json.dump(info, f, indent=1, default=str)
        return name + ".tflite"

    def _write_stats(self, force=False):
        now = time.time()
        if self.stats_path and (force or now - self.last_write > 2):
            self.stats["seconds"] = round(now - self.stats["started"], 1)
            tmp = self.stats_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.stats, f, indent=1)
            os.replace(tmp, self.stats_path)
            self.last_write = now

    def _check_alone(self, data, seed, stages):
        w = Worker()
        try:
            return w.check(data, seed, stages, timeout=CONFIRM_TIMEOUT)
        finally:
            w.kill()

    def classify(self, data, seed):
        if self.worker is None:
            self.worker = Worker()
        res = self.worker.check(data, seed)
        if any("crash" in r for r in res.values()):
            self.worker = None  # killed: a fresh one next time
        kind, detail = verdict(res)
        if kind in ("crash", "hang"):
            # Confirm alone, in fresh processes: TFLite alone, then the delegate alone.
            alone_ref = self._check_alone(data, seed, 1).get("ref", {})
            if "crash" in alone_ref:
                kind, detail = "tflite-" + kind, f"TFLite alone: {alone_ref}"
            else:
                alone = self._check_alone(data, seed, 2).get("mpc", {})
                if "crash" not in alone:
                    kind, detail = "flaky", f"{detail}; alone: {alone}"
        return kind, detail, res

    def one(self, data):
        if len(data) < 8 or data[4:8] != b"TFL3":
            return  # TFLite refuses it before any delegate sees it (cheap pre-screen)
        seed = int.from_bytes(hashlib.sha1(data).digest()[:4], "little")
        kind, detail, res = self.classify(data, seed)
        feedback(res)
        st = self.stats
        st["iterations"] += 1
        if kind is None:
            st["ok" if detail.startswith("ok") else "refused"] += 1
        elif kind == "tflite-crash":
            st["tflite_crashes"] += 1
            self._save("tflite-crash", data, {"seed": seed, "detail": detail})
        elif kind == "tflite-hang":
            st["tflite_hangs"] += 1
            self._save("tflite-hang", data, {"seed": seed, "detail": detail})
        elif kind == "flaky":
            st["flaky"] += 1
            self._save("flaky", data, {"seed": seed, "detail": detail, "result": res})
        else:
            st["bugs"] += 1
            path = self._save("bug-" + kind, data, {"seed": seed, "kind": kind, "detail": detail, "result": res})
            if path not in st["bug_files"]:
                st["bug_files"].append(path)
            sys.stderr.write(f"\n*** BUG ({kind}): {detail}\n    saved as {path}\n")
            self._write_stats(force=True)
            if self.stop_on_bug:
                raise RuntimeError(f"tflite-mpc fuzz bug ({kind}): {detail}")
        self._write_stats(force=kind is not None)


# ----------------------------------------------------------------------------- structure-aware mutator

_FB = None


def _schema():
    """TFLite's generated flatbuffer schema module, loaded without importing TensorFlow."""
    global _FB
    if _FB is None:
        loc = importlib.util.find_spec("tensorflow").submodule_search_locations[0]
        spec = importlib.util.spec_from_file_location(
            "tflite_schema_fb", os.path.join(loc, "lite", "python", "schema_py_generated.py"))
        _FB = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_FB)
    return _FB


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


INTERESTING_INTS = [0, 1, 2, 3, 4, -1, -2, 7, 8, 16, 127, 128, 255, 256, 4096, 65535, 1 << 20, (1 << 31) - 1, -(1 << 31)]
INTERESTING_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-30, 1e-10, 1 / 256, 0.5, 2.0, 1e10, 1e30, 3.4e38, float("inf"),
                      float("-inf"), float("nan"), 1e-45]
# ops with a secure kernel, and a few without (plaintext-only, or reading data)
OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "ADD",
       "SOFTMAX", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "SHAPE", "CAST", "GATHER", "SLICE", "PAD",
       "MUL", "SUB", "CONCATENATION", "RELU", "TRANSPOSE", "STRIDED_SLICE", "PACK", "SUM", "REDUCE_MAX"]


def _rint(rng, around=None):
    if around is not None and rng.random() < 0.5:
        return int(around) + rng.choice([-2, -1, 1, 2])
    return rng.choice(INTERESTING_INTS) if rng.random() < 0.7 else rng.randrange(-300, 300)


def _i32(v):
    return max(-(1 << 31), min((1 << 31) - 1, int(v)))


def _mutate_model(m, rng):
    import numpy as np
    fb = _schema()
    sg = m.subgraphs[0]
    T = len(sg.tensors or [])
    ops = sg.operators or []
    choice = rng.randrange(12)
    if choice == 0 and T:  # shape
        t = sg.tensors[rng.randrange(T)]
        s = [int(x) for x in (t.shape if t.shape is not None else [])]
        r = rng.random()
        if s and r < 0.6:
            i = rng.randrange(len(s))
            s[i] = _i32(_rint(rng, s[i]))
        elif r < 0.8 or not s:
            s.insert(rng.randrange(len(s) + 1), rng.choice([1, 1, 2, 3]))
        else:
            s.pop(rng.randrange(len(s)))
        t.shape = np.asarray(s, np.int32)
        if t.shapeSignature is not None and rng.random() < 0.7:
            t.shapeSignature = np.asarray(s, np.int32)
    elif choice == 1 and T:  # type
        t = sg.tensors[rng.randrange(T)]
        t.type = rng.choice([0, 2, 3, 4, 6, 7, 9, 9, 10, 1, 5, 15, 17])
    elif choice == 2 and T:  # quantization
        t = sg.tensors[rng.randrange(T)]
        q = t.quantization
        if q is None or rng.random() < 0.15:
            q = t.quantization = None if rng.random() < 0.5 else fb.QuantizationParametersT()
        if q is not None:
            n = len(q.scale) if q.scale is not None else 1
            r = rng.random()
            if r < 0.35:
                sc = np.asarray(q.scale if q.scale is not None else [1.0], np.float32).copy()
                sc[rng.randrange(len(sc))] = rng.choice(INTERESTING_FLOATS) if rng.random() < 0.7 else \
                    sc[0] * rng.choice([0.5, 2.0, 1.0001, 256.0, 1 / 256])
                q.scale = sc
            elif r < 0.6:
                zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.int64).copy()
                zp[rng.randrange(len(zp))] = rng.choice([0, 1, -1, 127, -128, 128, -129, 255, 1 << 20, -(1 << 40)])
                q.zeroPoint = zp
            elif r < 0.8:  # per-channel lists of another length
                k = rng.choice([0, 1, 2, n + 1, max(n - 1, 0), 3])
                q.scale = np.full(k, rng.choice([0.01, 0.5, 1.0]), np.float32)
                q.zeroPoint = np.zeros(k if rng.random() < 0.8 else rng.choice([1, k + 1]), np.int64)
            else:
                q.quantizedDimension = rng.choice([0, 1, 2, 3, 4, -1, 7])
    elif choice == 3 and ops:  # op code
        op = rng.choice(ops)
        if rng.random() < 0.5 and len(m.operatorCodes) > 1:
            op.opcodeIndex = rng.randrange(len(m.operatorCodes))
        else:
            code = getattr(fb.BuiltinOperator, rng.choice(OPS))
            oc = fb.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = rng.choice([1, 1, 2, 3, 4])
            m.operatorCodes.append(oc)
            op.opcodeIndex = len(m.operatorCodes) - 1
    elif choice == 4 and ops:  # builtin options
        op = rng.choice(ops)
        o = op.builtinOptions
        if o is None or rng.random() < 0.15:
            names = [n for n in dir(fb.BuiltinOptions) if not n.startswith("_") and n != "NONE"]
            name = rng.choice(names)
            cls = getattr(fb, name + "T", None)
            if cls is not None:
                op.builtinOptionsType = getattr(fb.BuiltinOptions, name)
                op.builtinOptions = cls()
        else:
            fields = [k for k, v in vars(o).items() if isinstance(v, (int, float, bool, np.ndarray, list))]
            if fields:
                k = rng.choice(fields)
                v = getattr(o, k)
                if isinstance(v, bool):
                    setattr(o, k, not v)
                elif isinstance(v, int):
                    setattr(o, k, _i32(_rint(rng, v)) if rng.random() < 0.8 else rng.randrange(0, 8))
                elif isinstance(v, float):
                    setattr(o, k, rng.choice(INTERESTING_FLOATS) if rng.random() < 0.6 else v * rng.uniform(0, 4))
                else:
                    a = [int(x) for x in v]
                    if a:
                        a[rng.randrange(len(a))] = _i32(_rint(rng))
                    setattr(o, k, np.asarray(a, np.int32))
    elif choice == 5 and ops:  # tensor indices of an op
        op = rng.choice(ops)
        lst = "inputs" if rng.random() < 0.7 else "outputs"
        a = [int(x) for x in (getattr(op, lst) if getattr(op, lst) is not None else [])]
        r = rng.random()
        if a and r < 0.7:
            a[rng.randrange(len(a))] = rng.choice([-1, T, T + 5, rng.randrange(max(T, 1))])
        elif r < 0.85 or not a:
            a.append(rng.choice([-1, rng.randrange(max(T, 1))]))
        else:
            a.pop(rng.randrange(len(a)))
        setattr(op, lst, np.asarray(a, np.int32))
    elif choice == 6:  # graph inputs / outputs
        lst = "inputs" if rng.random() < 0.5 else "outputs"
        a = [int(x) for x in (getattr(sg, lst) if getattr(sg, lst) is not None else [])]
        r = rng.random()
        if a and r < 0.5:
            a[rng.randrange(len(a))] = rng.randrange(max(T, 1))
        elif r < 0.8:
            a.append(rng.randrange(max(T, 1)))
        elif a:
            a.pop(rng.randrange(len(a)))
        setattr(sg, lst, np.asarray(a, np.int32))
    elif choice == 7 and T:  # buffers: truncate / extend / swap / drop
        t = sg.tensors[rng.randrange(T)]
        r = rng.random()
        if r < 0.3:
            t.buffer = rng.randrange(len(m.buffers))
        else:
            buf = m.buffers[t.buffer] if 0 <= t.buffer < len(m.buffers) else None
            if buf is not None:
                d = np.asarray(buf.data if buf.data is not None else [], np.uint8)
                if r < 0.55:
                    buf.data = d[:rng.randrange(len(d) + 1)] if len(d) else None
                elif r < 0.8:
                    buf.data = np.concatenate([d, np.full(rng.choice([1, 4, 16]), rng.randrange(256), np.uint8)])
                else:
                    buf.data = None
    elif choice == 8 and T:  # constant values (weights, axes, shapes)
        cands = [t for t in sg.tensors if 0 < t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None
                 and len(m.buffers[t.buffer].data) >= 4]
        if cands:
            t = rng.choice(cands)
            d = np.asarray(m.buffers[t.buffer].data, np.uint8).copy()
            if t.type == fb.TensorType.INT32 and len(d) % 4 == 0:
                v = d.view(np.int32)
                v[rng.randrange(len(v))] = _i32(_rint(rng))
            else:
                for _ in range(rng.randrange(1, 4)):
                    d[rng.randrange(len(d))] = rng.randrange(256)
            m.buffers[t.buffer].data = d
    elif choice == 9 and ops:  # duplicate / delete / reorder ops
        r = rng.random()
        if r < 0.4:
            import copy
            ops.insert(rng.randrange(len(ops) + 1), copy.deepcopy(rng.choice(ops)))
        elif r < 0.7 and len(ops) > 1:
            ops.pop(rng.randrange(len(ops)))
        elif len(ops) > 1:
            i, j = rng.randrange(len(ops)), rng.randrange(len(ops))
            ops[i], ops[j] = ops[j], ops[i]
    elif choice == 10 and T:  # variable flag / sparsity-free flags
        t = sg.tensors[rng.randrange(T)]
        t.isVariable = not t.isVariable
    elif choice == 11 and ops:  # rewire: one op's input becomes another op's output or a constant
        op = rng.choice(ops)
        if op.inputs is not None and len(op.inputs):
            src = rng.choice(ops)
            pool = [int(x) for x in (src.outputs if src.outputs is not None else [])] + \
                   [i for i, t in enumerate(sg.tensors) if t.buffer]
            if pool:
                a = [int(x) for x in op.inputs]
                a[rng.randrange(len(a))] = rng.choice(pool)
                op.inputs = np.asarray(a, np.int32)
    return m


def structure_mutate(data, rng):
    """One to three schema-level mutations of a model; None if it does not parse."""
    fb = _schema()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)  # a corrupt vector length can make parsing crawl
    try:
        m = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if not m.subgraphs or not m.buffers:
            return None
        for _ in range(rng.choice([1, 1, 2, 3])):
            _mutate_model(m, rng)
        m.signatureDefs = None if rng.random() < 0.9 else m.signatureDefs
        import flatbuffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
    except Exception:  # noqa: BLE001 - any parse / pack failure: fall back to byte mutation
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


SEEDS = []  # the valid seed models: a third of the structure mutations start from one of them


def custom_mutator(data, max_size, seed):
    import atheris
    rng = random.Random(seed)
    if rng.random() < 0.5:
        out = structure_mutate(rng.choice(SEEDS) if SEEDS and rng.random() < 0.33 else data, rng)
        if out is not None and len(out) <= max_size:
            return out
    return atheris.Mutate(data, max_size)


# ----------------------------------------------------------------------------- corpus

def make_corpus(path, small=False):
    """Seed models: one small model per supported op, float-edged variants and the digits CNN."""
    sys.path.append(ROOT)  # an installed tflite_mpc wins over the source tree (no _native there)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tflite_mpc import modelgen as mg
    seeds = {
        "conv": lambda: mg.conv2d(h=5, w=5, cin=2, cout=3, k=3, activation="relu"),
        "conv_pt_stride": lambda: mg.conv2d(h=6, w=6, cin=2, cout=2, k=2, stride=2, padding="valid",
                                            per_tensor=True, use_bias=False),
        "depthwise": lambda: mg.depthwise_conv2d(h=5, w=5, c=2, k=3, depth_multiplier=2, activation="relu6"),
        "fc": lambda: mg.fully_connected(batch=2, in_features=8, out_features=4),
        "avgpool": lambda: mg.average_pool2d(h=5, w=5, c=2, pool=2, stride=1, padding="same"),
        "maxpool": lambda: mg.max_pool2d(h=4, w=4, c=2),
        "mean": lambda: mg.mean(h=3, w=3, c=2),
        "add": lambda: mg.add(shape=(2, 3, 4), activation="relu"),
        "softmax": lambda: mg.softmax(n=6),
        "reshape": lambda: mg.reshape(in_shape=(2, 2, 3), out_shape=(4, 3)),
        "fc_float_io": lambda: mg.fully_connected(batch=1, in_features=6, out_features=3, int8_io=False),
        "conv_float_io": lambda: mg.conv2d(h=4, w=4, cin=1, cout=2, k=3, int8_io=False),
        "digits_cnn": lambda: mg.digits_cnn(c1=4, c2=4)[0],
    }
    if small:
        seeds = {k: seeds[k] for k in ("conv", "depthwise", "fc", "maxpool", "add", "softmax", "fc_float_io")}
    os.makedirs(path, exist_ok=True)
    for name, make in seeds.items():
        f = os.path.join(path, name + ".tflite")
        if not os.path.exists(f):
            with open(f, "wb") as fh:
                fh.write(make())
    return path


# ----------------------------------------------------------------------------- main

def main(argv):
    if argv[1:2] == ["--worker"]:
        return _worker_main()
    ours = {"--artifacts": os.path.join(HERE, "artifacts"), "--stats": None}
    flags = {"--stop-on-bug": False, "--small-corpus": False}
    rest = [argv[0]]
    it = iter(argv[1:])
    for a in it:
        if a in ours:
            ours[a] = next(it)
        elif a in flags:
            flags[a] = True
        elif a == "--repro":
            path = next(it)
            data = open(path, "rb").read()
            h = Harness(ours["--artifacts"])
            seed = int.from_bytes(hashlib.sha1(data).digest()[:4], "little")
            kind, detail, res = h.classify(data, seed)
            if h.worker:
                h.worker.kill()
            print(json.dumps({"verdict": kind or "fine", "detail": detail, "result": res}, indent=1, default=str))
            return 1 if kind and not kind.startswith("tflite-") else 0
        elif a == "--make-corpus":
            print(make_corpus(next(it), small=flags["--small-corpus"]))
            return 0
        else:
            rest.append(a)
    import atheris
    _FEEDBACK.extend(_feedback_functions())
    h = Harness(ours["--artifacts"], ours["--stats"], flags["--stop-on-bug"])
    corpus = [a for a in rest[1:] if not a.startswith("-")]
    for c in corpus:
        if not os.listdir(c) if os.path.isdir(c) else False:
            make_corpus(c, small=flags["--small-corpus"])
    for c in corpus:
        if os.path.isdir(c):
            SEEDS.extend(open(os.path.join(c, f), "rb").read() for f in sorted(os.listdir(c))
                         if f.endswith(".tflite"))
    if not any(a.startswith("-max_len") for a in rest):
        rest.append(f"-max_len={MAX_LEN}")
    if not any(a.startswith("-artifact_prefix") for a in rest):  # libFuzzer's own files (slow units)
        rest.append("-artifact_prefix=" + os.path.join(ours["--artifacts"], ""))
    atheris.Setup(rest, h.one, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
