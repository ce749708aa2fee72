"""Helpers for tests that run parties as separate processes: configurations,
`tflite-mpc party` processes, and the data owner (party 0) in this process."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import tflite_mpc
from tflite_mpc import modelgen

TIMEOUT = 6  # seconds: the configured per-wait timeout in these tests


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def write_config(d, ports, transport="tls", ca="certs/ca.pem", certs="certs", timeout=TIMEOUT, **extra):
    cfg = {"protocol": "rep3", "truncation": "exact", "transport": transport, "timeout": timeout, "ca": ca,
           "roles": {"data_owner": 0, "model_owner": 1, "output_to": [0]},
           "parties": [{"id": i, "host": "127.0.0.1", "port": ports[i], "cert": f"{certs}/party{i}.pem",
                        "key": f"{certs}/party{i}.key"} for i in range(3)]}
    cfg.update(extra)
    path = os.path.join(d, "parties.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def make_session(d, transport="tls", timeout=TIMEOUT):
    """A configuration (with certificates for TLS), the digits CNN and its public
    version in directory d: (config path, model bytes, {"model": path, "public": path})."""
    from tflite_mpc import cli

    cfg = write_config(d, free_ports(3), transport=transport, ca="certs/ca.pem" if transport == "tls" else "",
                       timeout=timeout)
    if transport == "tls":
        cli.make_certs(cfg, os.path.join(d, "certs"), days=2)
    model = modelgen.digits_cnn()[0]  # conv, conv, max pool, reshape, fully connected, softmax
    paths = {"model": os.path.join(d, "model.tflite"), "public": os.path.join(d, "public.tflite")}
    with open(paths["model"], "wb") as f:
        f.write(model)
    with open(paths["public"], "wb") as f:
        f.write(cli.strip_model(model))
    return cfg, model, paths


def log_lines(d, pid):
    path = os.path.join(d, f"party{pid}.log")
    return [line for line in open(path).read().splitlines() if "[tflite-mpc" in line] if os.path.exists(path) else []


def wait_for_log(d, pid, pattern, after=0, timeout=TIMEOUT + 10):
    """The first line (of those after the first `after`) of party pid's log matching
    the regular expression `pattern`, waiting for it up to `timeout` seconds."""
    import re

    deadline = time.time() + timeout
    while True:
        for line in log_lines(d, pid)[after:]:
            if re.search(pattern, line):
                return line
        if time.time() > deadline:
            raise AssertionError(f"party {pid} did not log {pattern!r}; log: {log_lines(d, pid)[after:]}")
        time.sleep(0.05)


def honest_inference(cfg, model, public, seed=0):
    """A real 3-party session with this process as the data owner: the secure
    output must equal TFLite's reference kernels."""
    import numpy as np

    x = modelgen.random_input(model, seed=seed)[0]
    it, d = client(cfg, public)
    got = infer(it, x)
    del it, d
    assert np.array_equal(got, modelgen.run_tflite(model, [x], reference=True)[0])


class Parties:
    """Party processes 1 and 2 (tflite-mpc party), stopped at exit."""

    def __init__(self, cfg, models, d):
        self.procs = {}
        self.cfg, self.models, self.d = cfg, models, d

    def start(self, pid, model=None, cfg=None):
        return self.start_all([pid], model, cfg)[0]

    def start_all(self, pids, model=None, cfg=None):
        """Start party processes side by side; return once each is about to connect."""
        seen = {}
        for pid in pids:
            path = os.path.join(self.d, f"party{pid}.log")
            seen[pid] = open(path).read().count("waiting for the other parties") if os.path.exists(path) else 0
            log = open(path, "a")
            self.procs[pid] = subprocess.Popen(
                [sys.executable, "-m", "tflite_mpc", "party", "--config", cfg or self.cfg, "--id", str(pid),
                 "--model", model or self.models[pid]], stdout=log, stderr=log, cwd=self.d)
        # Start-up (importing TensorFlow) can take longer than the session timeout on a busy
        # machine: return once the party is about to connect.
        deadline = time.time() + 120
        for pid in pids:
            path = os.path.join(self.d, f"party{pid}.log")
            while time.time() < deadline and self.procs[pid].poll() is None:
                if open(path).read().count("waiting for the other parties") > seen[pid]:
                    break
                time.sleep(0.1)
        return [self.procs[pid] for pid in pids]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def client(cfg, public, **kw):
    d = tflite_mpc.load_delegate(parties=cfg, party=0, **kw)
    it = modelgen._interp_api()[0](model_path=public, experimental_delegates=[d])
    it.allocate_tensors()
    return it, d


def infer(it, x):
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])
