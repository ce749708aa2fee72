"""Distributed mode: three processes on loopback over TCP with TLS 1.3 and mutual
certificate authentication. The data owner is this test process (party 0); the
model owner (party 1) and party 2 are `tflite-mpc party` processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import cli, modelgen

from distributed_helpers import TIMEOUT, Parties, client, free_ports, infer, make_session, write_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("dist"))
    cfg, model, paths = make_session(d)
    return d, cfg, model, paths


def test_tls_three_processes_match_local_mode(setup):
    d, cfg, model, paths = setup
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        # side by side: started one after the other, party 1 can give up its first session
        # (setup timeout) while party 2 still imports TensorFlow on a busy machine
        ps.start_all([1, 2])
        it, dlg = client(cfg, paths["public"])  # the data owner has no weights: the public model
        for seed in range(3):
            x = modelgen.random_input(model, seed=seed)[0]
            local = modelgen.run_tflite(model, [x], reference=False,
                                        delegates=[tflite_mpc.load_delegate(truncation="exact")])[0]
            got = infer(it, x)
            assert np.array_equal(got, local)
            assert np.array_equal(got, modelgen.run_tflite(model, [x], reference=True)[0])
        rep = tflite_mpc.report(dlg)
        # the other parties' figures arrive in their cost messages (tests/test_report.py)
        assert rep.parties_seen == [0, 1, 2] and all(p["bytes_sent"] > 0 for p in rep["parties"])
        del it, dlg
    finally:
        ps.stop()
    for pid, p in ps.procs.items():
        assert p.returncode == 0, f"party {pid} did not shut down cleanly on SIGTERM"


def test_killed_party_fails_the_others_in_time_and_restart_serves_again(setup):
    d, cfg, model, paths = setup
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    x = modelgen.random_input(model, seed=5)[0]
    want = modelgen.run_tflite(model, [x], reference=True)[0]
    try:
        ps.start(1)
        p2 = ps.start(2)
        it, dlg = client(cfg, paths["public"])
        assert np.array_equal(infer(it, x), want)
        p2.send_signal(signal.SIGSTOP)  # stalled, not dead: only the timeout can tell
        t0 = time.time()
        with pytest.raises(RuntimeError, match="timed out|disconnected"):
            infer(it, x)
        assert time.time() - t0 < TIMEOUT + 5
        p2.kill()
        p2.wait()
        with pytest.raises(RuntimeError, match="failed earlier|disconnected|timed out"):
            infer(it, x)  # this session is over
        del it, dlg
        ps.start(2)  # a restarted party serves the next session
        it, dlg = client(cfg, paths["public"])
        assert np.array_equal(infer(it, x), want)
        del it, dlg
    finally:
        ps.stop()


def test_certificate_from_another_ca_is_refused(setup, tmp_path):
    d, cfg, model, paths = setup
    cli.make_certs(cfg, str(tmp_path / "rogue"), days=2)  # same names, different CA
    rogue_cfg = json.load(open(cfg))
    rogue_cfg["parties"][2]["cert"] = str(tmp_path / "rogue" / "party2.pem")
    rogue_cfg["parties"][2]["key"] = str(tmp_path / "rogue" / "party2.key")
    rogue_cfg["ca"] = str(tmp_path / "rogue" / "ca.pem")
    rogue = tmp_path / "rogue.json"
    rogue.write_text(json.dumps(rogue_cfg))
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start(1)
        ps.start(2, cfg=str(rogue))
        with pytest.raises(RuntimeError, match="TLS handshake|certificate|closed the connection"):
            client(cfg, paths["public"])
    finally:
        ps.stop()


def test_party_with_another_partys_certificate_is_refused(setup, tmp_path):
    d, cfg, model, paths = setup
    c = json.load(open(cfg))
    c["ca"] = os.path.join(d, "certs", "ca.pem")
    for i, p in enumerate(c["parties"]):
        p["cert"], p["key"] = (os.path.join(d, "certs", f"party{i}.{e}") for e in ("pem", "key"))
    c["parties"][2]["cert"], c["parties"][2]["key"] = c["parties"][1]["cert"], c["parties"][1]["key"]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(c))
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start(1)
        ps.start(2, cfg=str(swapped))  # party 2 presents party 1's certificate
        with pytest.raises(RuntimeError, match="certificate for 'party1', expected 'party2'|closed the connection"):
            client(cfg, paths["public"])
    finally:
        ps.stop()


def test_graph_mismatch_is_refused_saying_what_differs(setup, tmp_path):
    d, cfg, model, paths = setup
    other = tmp_path / "other.tflite"
    other.write_bytes(cli.strip_model(modelgen.digits_cnn(pool="avg")[0]))
    ps = Parties(cfg, {1: paths["model"], 2: str(other)}, d)
    try:
        ps.start(1)
        ps.start(2)
        with pytest.raises(RuntimeError, match=r"session refused, party \d disagrees on graph"):
            client(cfg, paths["public"])
    finally:
        ps.stop()


def test_unreachable_parties_and_port_in_use(setup, tmp_path):
    d, cfg, model, paths = setup
    lonely = write_config(str(tmp_path), free_ports(3), ca=os.path.join(d, "certs", "ca.pem"),
                          certs=os.path.join(d, "certs"), timeout=2)
    t0 = time.time()
    with pytest.raises(RuntimeError, match="timed out after 2 s waiting for party 1"):
        client(lonely, paths["public"])
    assert time.time() - t0 < 10
    port = json.load(open(lonely))["parties"][0]["port"]
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    try:
        with pytest.raises(RuntimeError, match="already in use"):
            client(lonely, paths["public"])
    finally:
        s.close()


def test_bad_configuration_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"protocol": "rep3", "parties": [1, 2]}')
    with pytest.raises(ValueError, match="exactly 3 parties"):
        tflite_mpc.load_delegate(parties=str(bad), party=0)
    bad.write_text('{"protocol": "rep3",, }')
    with pytest.raises(ValueError, match="line 1"):
        tflite_mpc.load_delegate(parties=str(bad), party=0)
    with pytest.raises(ValueError, match="cannot read party configuration"):
        tflite_mpc.load_delegate(parties=str(tmp_path / "missing.json"), party=0)
    with pytest.raises(ValueError, match="needs 'party'"):
        tflite_mpc.load_delegate(parties=str(bad))


def test_plaintext_tcp_only_when_named(setup, tmp_path):
    d, cfg, model, paths = setup
    plain = write_config(str(tmp_path), free_ports(3), transport="tcp-insecure", ca="", timeout=TIMEOUT)
    ps = Parties(plain, {1: paths["model"], 2: paths["public"]}, str(tmp_path))
    x = modelgen.random_input(model, seed=9)[0]
    try:
        ps.start(1)
        ps.start(2)
        it, dlg = client(plain, paths["public"])
        assert np.array_equal(infer(it, x), modelgen.run_tflite(model, [x], reference=True)[0])
        del it, dlg
    finally:
        ps.stop()


def test_strip_zeroes_weights_and_keeps_the_graph(setup):
    d, cfg, model, paths = setup
    pub = open(paths["public"], "rb").read()
    assert modelgen.op_names(pub) == modelgen.op_names(model)
    for a, b in zip(modelgen.tensor_details(model), modelgen.tensor_details(pub)):
        assert a["shape"] == b["shape"] and np.array_equal(a["scales"], b["scales"])
    assert modelgen.op_names(pub)[:2] == ["CONV_2D", "CONV_2D"]
    # the public model computes something else: its weights are gone
    x = modelgen.random_input(model, seed=1)
    assert not np.array_equal(modelgen.run_tflite(pub, x)[0], modelgen.run_tflite(model, x)[0])


NETNS_CLIENT = """
import sys, numpy as np, tflite_mpc
from tflite_mpc import modelgen
cfg, public, xin, out = sys.argv[1:5]
d = tflite_mpc.load_delegate(parties=cfg, party=0)
it = modelgen._interp_api()[0](model_path=public, experimental_delegates=[d])
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]["index"], np.load(xin))
it.invoke()
np.save(out, it.get_tensor(it.get_output_details()[0]["index"]))
"""


def _sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True)


@pytest.fixture
def namespaces():
    """Three network namespaces on one bridge: hosts 10.231.0.1-3 (the project's own
    test hosts, made and removed here)."""
    if os.geteuid() != 0 or _sh("ip", "netns", "list").returncode != 0:
        pytest.skip("network namespaces need root and iproute2 (ip netns)")
    names = [f"tmpc{os.getpid() % 1000}n{i}" for i in range(3)]
    br = f"tmpcb{os.getpid() % 1000}"

    def teardown():
        for n in names:
            _sh("ip", "netns", "del", n)
        _sh("ip", "link", "del", br)
    teardown()
    steps = [("ip", "link", "add", br, "type", "bridge"), ("ip", "link", "set", br, "up")]
    for i, n in enumerate(names):
        v = f"{br}v{i}"
        steps += [("ip", "netns", "add", n), ("ip", "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n),
                  ("ip", "link", "set", v, "master", br), ("ip", "link", "set", v, "up"),
                  ("ip", "netns", "exec", n, "ip", "addr", "add", f"10.231.0.{i + 1}/24", "dev", "eth0"),
                  ("ip", "netns", "exec", n, "ip", "link", "set", "eth0", "up"),
                  ("ip", "netns", "exec", n, "ip", "link", "set", "lo", "up")]
    for s in steps:
        r = _sh(*s)
        if r.returncode != 0:
            teardown()
            pytest.skip(f"cannot build the test network ({' '.join(s)}: {r.stderr.strip()})")
    yield names
    teardown()


def test_parties_in_separate_network_namespaces(setup, namespaces, tmp_path):
    d, cfg, model, paths = setup
    c = json.load(open(cfg))
    for i, p in enumerate(c["parties"]):
        p["host"], p["port"] = f"10.231.0.{i + 1}", 7300 + i
        p["cert"], p["key"] = os.path.join(d, "certs", f"party{i}.pem"), os.path.join(d, "certs", f"party{i}.key")
    c["ca"] = os.path.join(d, "certs", "ca.pem")
    nscfg = tmp_path / "netns.json"
    nscfg.write_text(json.dumps(c))
    x = modelgen.random_input(model, seed=11)[0]
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = []
    try:
        for pid, m in ((1, paths["model"]), (2, paths["public"])):
            procs.append(subprocess.Popen(["ip", "netns", "exec", namespaces[pid], sys.executable, "-m", "tflite_mpc",
                                           "party", "--config", str(nscfg), "--id", str(pid), "--model", m],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path))
        r = subprocess.run(["ip", "netns", "exec", namespaces[0], sys.executable, "-c", NETNS_CLIENT, str(nscfg),
                            paths["public"], str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert np.array_equal(np.load(tmp_path / "y.npy"), modelgen.run_tflite(model, [x], reference=True)[0])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_party_command_fails_fast_on_configuration_errors(setup, tmp_path):
    d, cfg, model, paths = setup
    bad = tmp_path / "bad.json"
    bad.write_text('{"parties": [1]}')
    nocert = json.load(open(cfg))
    nocert["ca"] = str(tmp_path / "missing-ca.pem")
    nocert_path = tmp_path / "nocert.json"
    nocert_path.write_text(json.dumps(nocert))
    for conf, expect in ((str(tmp_path / "missing.json"), "cannot read party configuration"),
                         (str(bad), "exactly 3 parties"), (str(nocert_path), "cannot load")):
        r = subprocess.run([sys.executable, "-m", "tflite_mpc", "party", "--config", conf, "--id", "1",
                            "--model", paths["model"]], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 2 and expect in r.stderr, (conf, r.returncode, r.stderr[-1500:])
