"""The `tflite-mpc` command: run a compute party, make a public model, make certificates.

  tflite-mpc party --config parties.json --id 1 --model model.tflite   # long-running party
  tflite-mpc strip model.tflite -o public.tflite                       # weights zeroed
  tflite-mpc certs --config parties.json -o certs/                     # test CA + party certificates
  tflite-mpc inspect model.tflite --network wan                        # verdict per node + cost estimate

The data owner runs inference from its own program with
``tflite_mpc.load_delegate(parties="parties.json", party=0)``.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time


def _log(msg: str) -> None:
    print(f"[tflite-mpc {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- party
def serve(config: str, party: int, model: str, runtime: str | None = None, max_sessions: int | None = None) -> int:
    """Serve secure inferences as `party` until SIGTERM/SIGINT: connect to the other
    parties, run one inference per invoke of the data owner, and after the session
    ends (the data owner finished, a peer left, timed out or was refused) wait for
    the next one. A signal ends the current session at once, whatever it waits for."""
    import tflite_mpc
    from . import _native
    from .modelgen import _interp_api

    if not os.path.exists(model):
        _log(f"no such model: {model}")
        return 2
    try:  # configuration errors do not heal by retrying
        tflite_mpc.validate_options({"parties": config, "party": str(party)})
    except ValueError as e:
        _log(f"party {party}: {e}")
        return 2
    stop = threading.Event()

    def on_signal(signum, _frame):
        if not stop.is_set():
            _log(f"party {party}: signal {signum}, shutting down")
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

    Interpreter = _interp_api()[0]
    sessions = 0
    while not stopping() and (max_sessions is None or sessions < max_sessions):
        sessions += 1
        it = d = None
        try:
            d = tflite_mpc.load_delegate(runtime, parties=config, party=party)
            _log(f"party {party}: waiting for the other parties (session {sessions})")
            it = Interpreter(model_path=model, experimental_delegates=[d])  # connects
            it.allocate_tensors()
            _log(f"party {party}: session {sessions} established")
            n = 0
            while not stopping():
                it.invoke()
                n += 1
                _log(f"party {party}: inference {n} done")
        except (RuntimeError, ValueError) as e:
            if stopping():
                break
            text = str(e)
            left = re.search(r"party \d+ left the session \([^)]*\)", text)
            if left:  # a goodbye: the data owner (or another party) ended the session
                _log(f"party {party}: session {sessions} ended: {left.group(0)}")
                continue
            msg = [line for line in text.strip().splitlines() if line.strip()]
            _log(f"party {party}: session {sessions} failed: {msg[0] if msg else e}")
            if "cannot load" in text:
                return 2  # unreadable certificate, key or CA file: fix the files, then restart
            stop.wait(0.2)
        finally:
            del it, d  # ends the session: goodbye to the other parties
    _log(f"party {party}: stopped")
    return 0


# ---------------------------------------------------------------- strip
def strip_model(model_bytes: bytes) -> bytes:
    """The public model: same graph, shapes and quantization parameters, with every
    weight and bias buffer zeroed (what parties other than the model owner run)."""
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tflite-mpc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("party", help="run a long-running compute party")
    p.add_argument("--config", required=True, help="party configuration file (JSON)")
    p.add_argument("--id", type=int, required=True, choices=[0, 1, 2], help="this party's id")
    p.add_argument("--model", required=True, help="the model (the model owner) or its public version (strip)")
    p.add_argument("--runtime", choices=["tensorflow", "ai_edge_litert", "tflite_runtime"])
    s = sub.add_parser("strip", help="write the public model (weights zeroed)")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True)
    c = sub.add_parser("certs", help="make a test CA and party certificates with openssl")
    c.add_argument("--config", required=True)
    c.add_argument("-o", "--output", required=True, help="directory")
    c.add_argument("--days", type=int, default=365)
    k = sub.add_parser("check", help="which nodes of a model run securely, stay public or are refused (no MPC run)")
    k.add_argument("model")
    k.add_argument("--json", action="store_true", help="one JSON object: accepted, message, nodes")
    k.add_argument("--runtime", choices=["tensorflow", "ai_edge_litert", "tflite_runtime"])
    i = sub.add_parser("inspect", help="every node's verdict and the estimated cost per layer (no MPC run)")
    i.add_argument("model")
    i.add_argument("--network", default="wan",
                   help="lan, regional, wan (default), none or RTT_MS,MBPS (e.g. 40,100) for the time estimate")
    i.add_argument("--protocol", help="one protocol (default: every protocol)")
    i.add_argument("--truncation", choices=["probabilistic", "exact"], help="one mode (default: both)")
    i.add_argument("--json", action="store_true", help="one JSON object: nodes, estimates (full reports)")
    i.add_argument("--runtime", choices=["tensorflow", "ai_edge_litert", "tflite_runtime"])
    a = ap.parse_args(argv)
    if a.cmd == "inspect":
        from .cost import main as inspect_main

        return inspect_main(a)
    if a.cmd == "check":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
        _log(f"wrote {a.output} (weights and biases zeroed)")
        return 0
    if a.cmd == "certs":
        for w in make_certs(a.config, a.output, a.days):
            print(w)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
