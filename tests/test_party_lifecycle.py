"""Stopping and ending (security review, issue 7: item 11): a data owner that
finishes normally says goodbye, so the compute parties log a clean end; and
`tflite-mpc party` stops within a second of SIGTERM in every state."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from distributed_helpers import (Parties, client, honest_inference, infer, log_lines, make_session, wait_for_log)
from tflite_mpc import modelgen

STOP_WITHIN = 1.0  # seconds from SIGTERM to exit


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("life"))
    cfg, model, paths = make_session(d, transport="tls", timeout=30)
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start_all([1, 2])
        yield d, cfg, model, paths, ps
    finally:
        ps.stop()


def assert_clean_end(d, seen):
    for pid in (1, 2):
        line = wait_for_log(d, pid, r"session \d+ (ended|failed)", after=seen[pid])
        assert re.search(r"session \d+ ended: party 0 left the session \(finished\)", line), line
        assert not any("unexpected eof" in s for s in log_lines(d, pid)[seen[pid]:])


def test_data_owner_closing_its_interpreter_says_goodbye(tls):
    d, cfg, model, paths, ps = tls
    seen = {pid: len(log_lines(d, pid)) for pid in (1, 2)}
    honest_inference(cfg, model, paths["public"], seed=1)  # ends with del interpreter, delegate
    assert_clean_end(d, seen)


DATA_OWNER = """
import sys, numpy as np, tflite_mpc
from tflite_mpc import modelgen
cfg, public = sys.argv[1:3]
d = tflite_mpc.load_delegate(parties=cfg, party=0)
it = modelgen._interp_api()[0](model_path=public, experimental_delegates=[d])
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]["index"], np.zeros(it.get_input_details()[0]["shape"], np.int8))
it.invoke()
print("done")
# exits with the interpreter and the delegate still alive
"""


def test_data_owner_process_exit_says_goodbye(tls):
    d, cfg, model, paths, ps = tls
    seen = {pid: len(log_lines(d, pid)) for pid in (1, 2)}
    r = subprocess.run([sys.executable, "-c", DATA_OWNER, cfg, paths["public"]], capture_output=True, text=True,
                       timeout=120, cwd=d)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
    assert_clean_end(d, seen)


def stop_time(p):
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return time.time() - t0, p.returncode


def test_sigterm_mid_inference_waiting_on_a_round(tls):
    d, cfg, model, paths, ps = tls
    it, dlg = client(cfg, paths["public"])
    x = modelgen.random_input(model, seed=2)[0]
    infer(it, x)
    ps.procs[2].send_signal(signal.SIGSTOP)  # party 1 will wait on a round with party 2
    seen = len(log_lines(d, 1))
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, infer, it, x)))
    t.start()
    try:
        time.sleep(1.0)
        assert t.is_alive()  # the data owner and party 1 are still in the inference
        assert not any(re.search("ended|failed", s) for s in log_lines(d, 1)[seen:]), log_lines(d, 1)[seen:]
        took, rc = stop_time(ps.procs[1])
    finally:
        ps.procs[2].send_signal(signal.SIGCONT)
        t.join(timeout=60)
    print(f"SIGTERM -> exit, mid-inference: {took:.2f} s")
    assert rc == 0 and took < STOP_WITHIN, (took, rc)
    assert re.search(r"party 1", str(errors[0].value)), errors[0].value  # the data owner hears of it
    del it, dlg


def test_sigterm_while_waiting_for_a_session_and_mid_handshake(tmp_path):
    # Two lone party-1 processes (long timeout): one waits for party 0 to come up,
    # the other is stuck in the handshake with a "party 0" that accepts and is silent.
    procs, logs, listeners = {}, {}, {}
    for state in ("waiting", "handshake"):
        d = tmp_path / state
        d.mkdir()
        cfg, model, paths = make_session(str(d), transport="tls", timeout=60)
        if state == "handshake":
            import json

            port = json.load(open(cfg))["parties"][0]["port"]
            listeners[state] = socket.create_server(("127.0.0.1", port))
        logs[state] = open(d / "party1.log", "w")
        procs[state] = subprocess.Popen([sys.executable, "-m", "tflite_mpc", "party", "--config", cfg, "--id", "1",
                                         "--model", paths["model"]], stdout=logs[state], stderr=logs[state], cwd=d)
    try:
        for state, p in procs.items():
            wait_for_log(str(tmp_path / state), 1, "waiting for the other parties", timeout=120)
        conn, _ = listeners["handshake"].accept()  # party 1 dialled: it now waits for the TLS handshake
        time.sleep(1.0)
        for state, p in procs.items():
            took, rc = stop_time(p)
            print(f"SIGTERM -> exit, {state}: {took:.2f} s")
            assert rc == 0 and took < STOP_WITHIN, (state, took, rc)
        conn.close()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for s in listeners.values():
            s.close()
