"""Hostile peers against real `tflite-mpc party` processes, over tcp-insecure and
over TLS with a valid certificate (security review, issue 7: items 2 and 7).

A fake party 0 in Python (fakepeer.py) completes the handshake with parties 1
and 2, then sends a malformed stream to party 1, which expects the 16-byte key
of the protocol set-up round from party 0. Each time party 1 must end the
session with a clear error, never crash, and then serve an honest session whose
output equals TFLite's reference kernels."""
import os
import random
import socket
import ssl
import struct
import time

import numpy as np
import pytest

from distributed_helpers import (TIMEOUT, Parties, client, honest_inference, infer, log_lines, make_session,
                                 wait_for_log)
from fakepeer import BYE, DATA, HELLO, FakeParty, frame, header
from tflite_mpc import modelgen

# (name, bytes sent to party 1 after the handshake, close right after?, what party 1 must log)
ATTACKS = [
    ("oversized length", header(DATA, 2**56 - 1), False,
     r"protocol desync: expected a message of 16 bytes, got a frame of 72057594037927935 bytes"),
    ("length 2^64-1", b"\xff" * 8 + b"k" * 4096, False, r"malformed frame header \(unknown frame kind 255\)"),
    ("length negative as signed", struct.pack("<q", -(2**63) + 16), False,
     r"malformed frame header \(unknown frame kind 128\)"),
    ("truncated frame, then close", header(DATA, 16) + b"k" * 5, True, r"disconnected in the middle of a message"),
    ("close mid-header", header(DATA, 16)[:3], True, r"disconnected in the middle of a message"),
    ("garbage after the hello", bytes(random.Random(7).randrange(256) for _ in range(64)), False,
     r"malformed frame header|protocol desync"),
    ("wrong message size (wrong round)", frame(DATA, b"k" * 24), False,
     r"protocol desync: expected a message of 16 bytes, got a frame of 24 bytes"),
    ("unexpected message: a second hello", frame(HELLO, b"0\nagain"), False, r"unexpected handshake message"),
    ("oversized goodbye", header(BYE, 2**40), False, r"malformed goodbye"),
]


@pytest.fixture(scope="module", params=["tcp-insecure", "tls"])
def net(request, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("adv"))
    cfg, model, paths = make_session(d, transport=request.param, timeout=30)
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start_all([1, 2])
        yield request.param, d, cfg, model, paths, ps
    finally:
        ps.stop()
    for pid, p in ps.procs.items():
        assert p.returncode == 0, f"party {pid} exited with {p.returncode} (a crash?)"


def attack(net, send, close, expect):
    transport, d, cfg, model, paths, ps = net
    seen = len(log_lines(d, 1))
    fake = FakeParty(cfg).accept_parties()
    try:
        send(fake)
        if not close:
            fake.wait_closed(1, timeout=TIMEOUT + 5)  # party 1 ends the session
    finally:
        fake.close()
    # Not the previous honest session's end: under load party 1 may log it after `seen`.
    line = wait_for_log(d, 1, r"session \d+ (failed|ended)(?!.*left the session \(finished\))", after=seen)
    assert expect is None or __import__("re").search(expect, line), line
    for pid, p in ps.procs.items():
        assert p.poll() is None, f"party {pid} died (exit code {p.returncode})"
    honest_inference(cfg, model, paths["public"], seed=len(line))  # the next honest session works


@pytest.mark.parametrize("name,data,close,expect", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_malformed_stream_ends_the_session_and_the_party_serves_the_next(net, name, data, close, expect):
    attack(net, lambda fake: fake.send(1, data), close, expect)


def test_garbage_under_tls_ends_the_session(net):
    if net[0] != "tls":
        pytest.skip("TLS only")
    # A whole record of garbage straight on the TCP connection, not made by TLS.
    attack(net, lambda fake: fake.send_raw(1, b"\x17\x03\x03\x00\x40" + b"\x00" * 64), False, r"disconnected")


def test_unsolicited_data_is_not_buffered(net):
    """Party 2 never receives from party 0 in the set-up round: a flood of frames
    from party 0 must stay in the sender's buffers (TCP flow control), not ours."""
    transport, d, cfg, model, paths, ps = net
    fake = FakeParty(cfg).accept_parties()
    sent = 0
    try:
        fake.send(1, frame(DATA, b"k" * 16))  # party 1 gets its key and goes on
        flood = frame(DATA, b"f" * 16) * 65536  # 1.5 MiB per call
        s = fake.conns[2]
        s.settimeout(2)
        while sent < 512 << 20:
            s.sendall(flood)
            sent += len(flood)
    except (socket.timeout, ssl.SSLError, OSError):
        pass  # the flood is stalled: nobody reads it
    finally:
        fake.close()
    assert sent < 64 << 20, f"party 2 took {sent >> 20} MiB of data it never asked for"
    for pid, p in ps.procs.items():
        assert p.poll() is None, f"party {pid} died (exit code {p.returncode})"
    honest_inference(cfg, model, paths["public"], seed=3)


STRAYS = """
import signal, socket, ssl, sys, time
port, tls, pids = int(sys.argv[1]), sys.argv[2] == "tls", [int(p) for p in sys.argv[3:]]
strays = []
try:
    deadline = time.time() + 60
    while True:  # the port scan: connect, close
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)
    strays.append(socket.create_connection(("127.0.0.1", port)))  # silent
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(bytes(range(256)) * 4)
    strays.append(garbage)
    if tls:
        rogue = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        rogue.check_hostname = False
        rogue.verify_mode = ssl.CERT_NONE  # and no certificate of ours: the party must refuse us
        raw = socket.create_connection(("127.0.0.1", port))
        raw.settimeout(5)
        try:
            strays.append(rogue.wrap_socket(raw))
            strays[-1].recv(1)
        except (ssl.SSLError, OSError):
            pass
    time.sleep(0.5)
finally:
    for p in pids:
        import os
        os.kill(p, signal.SIGCONT)
print("strays done", flush=True)
time.sleep(30)  # the silent connection stays open
"""


def test_stray_connections_do_not_stop_the_session_forming(net, capfd):
    """While the data owner (this process) waits for parties 1 and 2: a port scan,
    a silent connection, garbage, and (TLS) a client without a certificate connect
    first. They are dropped and logged, and the session forms."""
    import json
    import signal
    import subprocess
    import sys

    transport, d, cfg, model, paths, ps = net
    port = json.load(open(cfg))["parties"][0]["port"]
    # The honest parties come last: stop them at the start of a session attempt
    # (well within its timeout, or they would give up on it while stopped).
    seen = {pid: len(log_lines(d, pid)) for pid in ps.procs}
    for pid in ps.procs:
        fresh = time.time() - os.path.getmtime(os.path.join(d, f"party{pid}.log")) < 1.0
        if not (fresh and "waiting for the other parties" in log_lines(d, pid)[-1]):
            wait_for_log(d, pid, "waiting for the other parties", after=seen[pid])
    for p in ps.procs.values():
        p.send_signal(signal.SIGSTOP)
    # Another process: this one holds the GIL while it sets up the session.
    strays = subprocess.Popen([sys.executable, "-c", STRAYS, str(port), transport] +
                              [str(p.pid) for p in ps.procs.values()], stdout=subprocess.PIPE, text=True)
    try:
        x = modelgen.random_input(model, seed=4)[0]
        it, dlg = client(cfg, paths["public"])
        assert np.array_equal(infer(it, x), modelgen.run_tflite(model, [x], reference=True)[0])
        del it, dlg
    finally:
        for p in ps.procs.values():
            p.send_signal(signal.SIGCONT)
        strays.kill()
        out = strays.communicate()[0]
    assert "strays done" in out
    err = capfd.readouterr().err
    assert err.count("party 0: dropped a connection from 127.0.0.1") >= 2, err[-3000:]
