"""The `tflite-mpc` command: run, evaluate and benchmark a model securely, check it, run a
compute party, make a public model, make certificates.

  tflite-mpc run model.tflite --input cat.jpg --labels labels.txt     # one secure inference vs TFLite
  tflite-mpc eval model.tflite --data test.npz --limit 100           # accuracy, agreement, cost
  tflite-mpc bench model.tflite --runs 10 [--json]                   # secure invoke timings
  tflite-mpc check model.tflite                                      # which nodes run securely
  tflite-mpc inspect model.tflite --network wan                      # ... and what it will cost
  tflite-mpc party --config parties.json --id 1 --model model.tflite   # long-running party
  tflite-mpc strip model.tflite -o public.tflite                       # weights zeroed
  tflite-mpc certs --config parties.json -o certs/                     # test CA + party certificates

The data owner runs inference from its own program with
``tflite_mpc.load_delegate(parties="parties.json", party=0)``.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time


log = logging.getLogger("tflite_mpc")
RUNTIMES = ["tensorflow", "ai_edge_litert", "tflite_runtime"]


def setup_logging(level=logging.INFO) -> None:
    """Log lines as '[tflite-mpc HH:MM:SS] message' on stderr (the native library's
    'dropped a connection' lines have the same form)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[tflite-mpc %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


# ---------------------------------------------------------------- party
def serve(config: str, party: int, model: str, runtime: str | None = None, max_sessions: int | None = None) -> int:
    """Serve secure inferences as `party` until SIGTERM/SIGINT: connect to the other
    parties, run one inference per invoke of the data owner, and after the session
    ends (the data owner finished, a peer left, timed out or was refused) wait for
    the next one. A signal ends the current session at once, whatever it waits for."""
    import tflite_mpc
    from . import _native
    from .commands import _runtime
    from .delegate import interpreter_api

    if not os.path.exists(model):
        log.error(f"no such model: {model}")
        return 2
    try:  # configuration errors do not heal by retrying
        tflite_mpc.validate_options({"parties": config, "party": str(party)})
    except ValueError as e:
        log.error(f"party {party}: {e}")
        return 2
    runtime = _runtime(runtime)  # the delegate and the interpreter of one runtime (ai_edge_litert first)
    Interpreter = interpreter_api(runtime)[0]
    log.debug(f"party {party}: runtime {runtime}, model {model}")
    stop = threading.Event()

    def on_signal(signum, _frame):
        if not stop.is_set():
            log.info(f"party {party}: signal {signum}, shutting down")
        stop.set()

    # The native session code may wait with the GIL held (while TFLite applies the
    # delegate, which connects): Python's C-level handler writes the signal number
    # to the wakeup pipe without the GIL, and a native thread ends every session.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.set_wakeup_fd(wake_w)
    _native.shutdown_on_wakeup_fd(wake_r)

    def stopping():
        return stop.is_set() or _native.shutting_down()

    sessions = 0
    while not stopping() and (max_sessions is None or sessions < max_sessions):
        sessions += 1
        it = d = None
        try:
            d = tflite_mpc.load_delegate(runtime, parties=config, party=party)
            log.info(f"party {party}: waiting for the other parties (session {sessions})")
            it = Interpreter(model_path=model, experimental_delegates=[d])  # connects
            it.allocate_tensors()
            log.info(f"party {party}: session {sessions} established")
            n = 0
            while not stopping():
                t0 = time.perf_counter()
                it.invoke()
                n += 1
                log.debug(f"party {party}: inference {n} done ({time.perf_counter() - t0:.3f} s)")
        except (RuntimeError, ValueError) as e:
            if stopping():
                break
            text = str(e)
            left = re.search(r"party \d+ left the session \([^)]*\)", text)
            if left:  # a goodbye: the data owner (or another party) ended the session
                log.info(f"party {party}: session {sessions} ended: {left.group(0)}")
                continue
            msg = [line for line in text.strip().splitlines() if line.strip()]
            log.warning(f"party {party}: session {sessions} failed: {msg[0] if msg else e}")
            if "cannot load" in text:
                return 2  # unreadable certificate, key or CA file: fix the files, then restart
            stop.wait(0.2)
        finally:
            del it, d  # ends the session: goodbye to the other parties
    log.info(f"party {party}: stopped")
    return 0


# ---------------------------------------------------------------- strip
def strip_model(model_bytes: bytes) -> bytes:
    """The public model: same graph, shapes and quantization parameters, with every
    weight and bias buffer zeroed (what parties other than the model owner run)."""
    from . import _quiet

    _quiet.import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as fb

    from .modelgen import _pack, _parse

    m = _parse(model_bytes)
    int32 = {fb.TensorType.INT32, fb.TensorType.INT64}
    weighted = {fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D, fb.BuiltinOperator.FULLY_CONNECTED}
    for sg in m.subgraphs:
        bias_tensors = set()
        for op in sg.operators:
            oc = m.operatorCodes[op.opcodeIndex]
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) in weighted and len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias_tensors.add(int(op.inputs[2]))
        for ti, t in enumerate(sg.tensors):
            buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
            if buf is None or buf.data is None or len(buf.data) == 0:
                continue
            if t.type not in int32 or ti in bias_tensors:
                buf.data = [0] * len(buf.data)
    if any(getattr(b, "offset", 0) for b in m.buffers):
        raise ValueError("models with external (offset) buffers are not supported by strip")
    return _pack(m)


# ---------------------------------------------------------------- certs
def make_certs(config: str, out_dir: str, days: int = 365) -> list[str]:
    """A test CA and one certificate per party (CN=party<id>) with openssl."""
    import json

    with open(config) as f:
        cfg = json.load(f)
    os.makedirs(out_dir, exist_ok=True)

    def run(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl " + " ".join(args[:2]) + " failed: " + r.stderr.strip())

    ca_key, ca = os.path.join(out_dir, "ca.key"), os.path.join(out_dir, "ca.pem")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
        "-out", ca, "-days", str(days), "-subj", "/CN=tflite-mpc test CA")
    written = [ca]
    for p in cfg.get("parties", []):
        i = int(p["id"])
        key, csr, crt = (os.path.join(out_dir, f"party{i}.{e}") for e in ("key", "csr", "pem"))
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN=party{i}")
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", str(days))
        os.remove(csr)
        os.chmod(key, 0o600)
        written += [crt, key]
    return written


def _compare_args(p) -> None:
    p.add_argument("--compare", action=argparse.BooleanOptionalAction, default=None,
                   help="also run plaintext TFLite (reference kernels) and compare (default: in local mode only; "
                        "in distributed mode the data owner usually holds only the public model)")
    p.add_argument("--argmax", action="store_true",
                   help="reveal only the top-1 class of each output row (delegate option output=argmax; in "
                        "distributed mode the party configuration's \"output\" decides)")


def _session_args(p) -> None:
    """The delegate options run, eval and bench share."""
    g = p.add_argument_group("secure session (local mode: three parties as threads of this process)")
    g.add_argument("--protocol", help="MPC protocol (default rep3)")
    g.add_argument("--truncation", choices=["probabilistic", "exact"],
                   help="probabilistic (default; within 1 LSB per op) or exact (bit-identical to TFLite's "
                        "reference kernels)")
    g.add_argument("--network", choices=["none", "lan", "regional", "wan"],
                   help="emulate the links between the parties (default none)")
    g.add_argument("--timeout", type=float, help="seconds a party waits for a peer (default 120)")
    g.add_argument("--runtime", choices=RUNTIMES, help="TFLite runtime (default: ai_edge_litert if installed)")
    g.add_argument("--parties", metavar="CONFIG",
                   help="distributed mode: the party configuration (it decides protocol, truncation, roles); "
                   "this process is the data owner and parties 1 and 2 run `tflite-mpc party`")
    g.add_argument("--party", type=int, choices=[0, 1, 2], help="this process's party id (with --parties)")


def _options(a) -> dict:
    from .commands import session_options

    return session_options(protocol=a.protocol, truncation=a.truncation, output_to=getattr(a, "output_to", None),
                           network=a.network, parties=getattr(a, "parties", None), party=getattr(a, "party", None),
                           timeout=a.timeout, output="argmax" if getattr(a, "argmax", False) else None)


def _run(a) -> int:
    from . import commands as c

    if a.top_k < 1:
        raise c.UsageError(f"--top-k {a.top_k}: expected at least 1")
    model = c.read_model(a.model)
    opts = _options(a)
    it = c.plain_interpreter(model, a.runtime)  # the input's shape, type and quantization
    x = c.read_input(a.input, c._single_input(it), a.key, a.preprocess)
    del it
    c.run(model, x, opts, runtime=a.runtime, labels=c.read_labels(a.labels), top=a.top_k, compare=a.compare,
          name=os.path.basename(a.model))
    return 0


def _eval(a) -> int:
    from . import commands as c

    if a.limit is not None and a.limit < 1:
        raise c.UsageError("--limit must be >= 1")
    model = c.read_model(a.model)
    data = c.read_dataset(a.data, a.key, c.read_labels(a.labels))
    c.evaluate(model, data, _options(a), runtime=a.runtime, limit=a.limit, preprocess=a.preprocess,
               compare=a.compare, progress=not a.quiet, as_json=a.json, name=os.path.basename(a.model))
    return 0


def _bench(a) -> int:
    from . import commands as c

    model = c.read_model(a.model)
    inputs = None
    if a.input:
        it = c.plain_interpreter(model, a.runtime)
        inputs = [c.read_input(a.input, c._single_input(it), a.key, a.preprocess)]
        del it
    c.bench(model, _options(a), runtime=a.runtime, warmup=a.warmup, runs=a.runs, inputs=inputs, as_json=a.json,
            name=os.path.basename(a.model))
    return 0


def _input_args(p, required: bool) -> None:
    p.add_argument("--input", required=required, metavar="FILE",
                   help="an image (resized to the model's input), a .npy array or an .npz archive (its first "
                        "array, or --key); float arrays are quantized with the input's scale and zero point")
    p.add_argument("--key", help="the array of an .npz to use")
    p.add_argument("--preprocess", default="auto", choices=["auto", "unit", "mobilenet", "raw"],
                   help="image pixels scaled to [0, 1] (unit), [-1, 1] (mobilenet) or [0, 255] (raw); auto: "
                        "the range the input's quantization covers")


def main(argv=None) -> int:
    from ._quiet import set_environment

    set_environment()  # before anything imports TensorFlow
    ap = argparse.ArgumentParser(prog="tflite-mpc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one secure inference beside plaintext TFLite: top-k, agreement, cost report")
    r.add_argument("model")
    _input_args(r, required=True)
    r.add_argument("--labels", metavar="FILE", help="text file with one label per line")
    r.add_argument("--top-k", type=int, default=5)
    r.add_argument("--output-to", metavar="IDS", help="party or parties that receive the output (default 0)")
    _compare_args(r)
    _session_args(r)
    e = sub.add_parser("eval", help="a data set through secure and plaintext inference: accuracy, agreement, cost")
    e.add_argument("model")
    e.add_argument("--data", required=True, metavar="FILE.npz|DIR",
                   help="an .npz with arrays x (samples) and optional y (class indices), or a directory of "
                        "images in class-named subfolders (or flat: no labels)")
    e.add_argument("--key", help="the .npz array of samples (default x)")
    e.add_argument("--labels", metavar="FILE", help="label per line: maps class folder names to indices")
    e.add_argument("--limit", type=int, metavar="N", help="the first N samples")
    e.add_argument("--preprocess", default="auto", choices=["auto", "unit", "mobilenet", "raw"],
                   help="image pixels scaled to [0, 1], [-1, 1] or [0, 255]; auto: from the input's quantization")
    e.add_argument("--json", action="store_true", help="print the results as one JSON line")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _compare_args(e)
    _session_args(e)
    b = sub.add_parser("bench", help="time secure invokes (min/median/max), bytes per party, rounds")
    b.add_argument("model")
    b.add_argument("--warmup", type=int, default=1, help="untimed invokes after the first (default 1)")
    b.add_argument("--runs", type=int, default=10, help="timed invokes (default 10)")
    b.add_argument("--json", action="store_true", help="print the results as one JSON line")
    _input_args(b, required=False)
    _session_args(b)
    k = sub.add_parser("check", help="which nodes of a model run securely, stay public or are refused (no MPC run)")
    k.add_argument("model")
    k.add_argument("--json", action="store_true", help="one JSON object: accepted, message, nodes")
    k.add_argument("--runtime", choices=RUNTIMES)
    p = sub.add_parser("party", help="run a long-running compute party")
    p.add_argument("--config", required=True, help="party configuration file (JSON)")
    p.add_argument("--id", type=int, required=True, choices=[0, 1, 2], help="this party's id")
    p.add_argument("--model", required=True, help="the model (the model owner) or its public version (strip)")
    p.add_argument("--runtime", choices=RUNTIMES, help="TFLite runtime (default: ai_edge_litert if installed)")
    p.add_argument("-v", "--verbose", action="store_true", help="also log every inference")
    p.add_argument("-q", "--quiet", action="store_true", help="log only failures")
    s = sub.add_parser("strip", help="write the public model (weights zeroed)")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True)
    c = sub.add_parser("certs", help="make a test CA and party certificates with openssl")
    c.add_argument("--config", required=True)
    c.add_argument("-o", "--output", required=True, help="directory")
    c.add_argument("--days", type=int, default=365)
    i = sub.add_parser("inspect", help="every node's verdict and the estimated cost per layer (no MPC run)")
    i.add_argument("model")
    i.add_argument("--network", default="wan",
                   help="lan, regional, wan (default), none or RTT_MS,MBPS (e.g. 40,100) for the time estimate")
    i.add_argument("--protocol", help="one protocol (default: every protocol)")
    i.add_argument("--truncation", choices=["probabilistic", "exact"], help="one mode (default: both)")
    i.add_argument("--json", action="store_true", help="one JSON object: nodes, estimates (full reports)")
    i.add_argument("--runtime", choices=RUNTIMES)
    a = ap.parse_args(argv)
    setup_logging(logging.DEBUG if getattr(a, "verbose", False) else
                  logging.WARNING if getattr(a, "quiet", False) and a.cmd == "party" else logging.INFO)
    if a.cmd == "inspect":
        from .cost import main as inspect_main

        return inspect_main(a)
    if a.cmd in ("run", "eval", "bench"):
        from .commands import UsageError

        try:
            return {"run": _run, "eval": _eval, "bench": _bench}[a.cmd](a)
        except BrokenPipeError:  # stdout closed early (| head)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except (UsageError, ValueError, OSError, ImportError) as e:  # bad input (or runtime): one line, no traceback
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"tflite-mpc {a.cmd}: error: {msg}", file=sys.stderr)
            return 2
        except RuntimeError as e:  # refused model, failed session
            print(f"tflite-mpc {a.cmd}: failed: {str(e).strip()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    for path in [getattr(a, "model", None) if a.cmd in ("check", "strip") else None,
                 getattr(a, "config", None) if a.cmd == "certs" else None]:
        if path is not None and not os.path.isfile(path):  # one line, exit 2 (not a refusal, no traceback)
            print(f"tflite-mpc {a.cmd}: error: no such file: {path}", file=sys.stderr)
            return 2
    if a.cmd == "check":
        from .delegate import check

        r = check(a.model, a.runtime)
        if a.json:
            import json

            print(json.dumps({"accepted": r.accepted, "message": r.message, "nodes": list(r)}))
        else:
            print(r)
        return 0 if r.accepted else 1
    if a.cmd == "party":
        rc = serve(a.config, a.id, a.model, a.runtime)
        # Exit at once: every session has said goodbye, and tearing TensorFlow down
        # at interpreter exit takes about a second.
        from . import _native

        _native.close_sessions()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    if a.cmd == "strip":
        with open(a.model, "rb") as f:
            data = strip_model(f.read())
        with open(a.output, "wb") as f:
            f.write(data)
        log.info(f"wrote {a.output} (weights and biases zeroed)")
        return 0
    if a.cmd == "certs":
        for w in make_certs(a.config, a.output, a.days):
            print(w)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
