"""Network emulation in the transports (options network, latency_ms, bandwidth_mbps).

What the prediction is. Every round of rep3, each party sends, then receives, so a
round costs one one-way latency (RTT / 2), not a full RTT. And the report's
"rounds" (rounds the protocol code counts) is not quite the length of the longest
chain of dependent messages: on the digits CNN it counts 193 rounds while the chain
is about 214 messages long (some counted rounds hide a second hop). The in-memory
transport measures that chain (report "depth", a Lamport clock carried by every
message); the faithful prediction of the time the network adds is
    depth x one-way latency + max-party bytes x 8 / bandwidth
and rounds x RTT would overestimate the latency part about twice.
"""
import os
import statistics
import tempfile
import time

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import modelgen


@pytest.fixture(scope="module")
def digits():
    model = modelgen.digits_cnn()[0]  # conv, conv, max pool, reshape, fully connected, softmax
    return model, modelgen.random_input(model, seed=0)[0]


def _run(model, x, runs, **opt):
    """Median seconds of `runs` inferences after a first one (weight sharing), report, output."""
    d = tflite_mpc.load_delegate(**opt)
    it = modelgen._interp_api()[0](model_content=model, experimental_delegates=[d])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t0)
    out = it.get_tensor(it.get_output_details()[0]["index"]).copy()
    rep = tflite_mpc.report(d)
    del it, d
    return (statistics.median(ts) if ts else None), rep, out


def _predicted(rep, latency_ms, bandwidth_mbps, per_link=False):
    """depth x one-way latency + transfer time. Every link (party, direction) has its own
    bandwidth: the transfer takes at least the busiest link's bytes / bandwidth (per_link) and
    at most the busiest party's bytes / bandwidth (its two links one after the other); where in
    between depends on how each round's traffic is spread over the links."""
    depth = max(p["depth"] for p in rep["parties"])
    if per_link:
        sent = max(max(p["bytes_sent_to"]) for p in rep["parties"])
    else:
        sent = max(p["bytes_sent"] for p in rep["parties"])
    return depth * latency_ms * 1e-3 + (sent * 8 / (bandwidth_mbps * 1e6) if bandwidth_mbps else 0.0)


@pytest.fixture(scope="module")
def baseline(digits):
    return _run(*digits, runs=5)


@pytest.mark.parametrize("opt", [
    {"latency_ms": 10},                             # latency-dominated: 20 ms RTT, unlimited bandwidth
    {"latency_ms": 0.05, "bandwidth_mbps": 10},     # bandwidth-dominated: 0.1 ms RTT, 10 Mbit/s
], ids=["20ms-rtt", "10mbps"])
def test_added_time_matches_depth_x_latency_plus_bytes_over_bandwidth(digits, baseline, opt):
    base_s, base_rep, base_out = baseline
    secs, rep, out = _run(*digits, runs=3 if "bandwidth_mbps" not in opt else 5, **opt)
    assert np.array_equal(out, base_out)  # emulation changes timing only
    parties = rep["parties"]
    # (the OT sender role rotates from call to call: compare the multiset over parties;
    # the depth too depends a little on which party is the sender where)
    for k in ("bytes_sent", "rounds"):
        assert sorted(p[k] for p in parties) == sorted(p[k] for p in base_rep["parties"]), k
    # each counted round is at least one hop; the chain is a little longer than the count
    assert all(p["rounds"] <= p["depth"] <= 1.3 * p["rounds"] for p in parties)
    want = _predicted(rep, opt["latency_ms"], opt.get("bandwidth_mbps"))
    added = secs - base_s
    if "bandwidth_mbps" not in opt:
        assert abs(added - want) <= 0.15 * want, (added, want, parties)
    else:  # between the busiest link's and the busiest party's transfer time (see _predicted)
        low = _predicted(rep, opt["latency_ms"], opt["bandwidth_mbps"], per_link=True)
        assert 0.85 * low <= added <= 1.15 * want, (added, low, want, parties)


def test_network_profiles_and_report(digits, baseline):
    base_s, base_rep, base_out = baseline
    assert base_rep["network"] is None
    secs, rep, out = _run(*digits, runs=1, network="regional")
    assert np.array_equal(out, base_out)
    assert rep["network"] == {"profile": "regional", "latency_ms": 1.0, "bandwidth_mbps": 1000.0}
    assert secs - base_s >= 0.9 * _predicted(rep, 1.0, 1000.0)
    # explicit values override the profile's; bandwidth 0 is unlimited
    _, rep, _ = _run(*digits, runs=0, network="wan", latency_ms=1, bandwidth_mbps=0)
    assert rep["network"] == {"profile": "wan", "latency_ms": 1.0, "bandwidth_mbps": None}
    _, rep, _ = _run(*digits, runs=0, bandwidth_mbps=500)
    assert rep["network"] == {"profile": "custom", "latency_ms": 0.0, "bandwidth_mbps": 500.0}
    _, rep, _ = _run(*digits, runs=0, network="none")
    assert rep["network"] is None
    for k in ("network", "latency_ms", "bandwidth_mbps"):
        assert k in tflite_mpc.OPTIONS


def test_network_options_are_validated():
    with pytest.raises(ValueError, match="network='moon'.*none, lan.*regional.*wan"):
        tflite_mpc.load_delegate(network="moon")
    for bad in ("-1", "abc", "", "nan", "inf"):
        with pytest.raises(ValueError, match=f"latency_ms='{bad}'.*milliseconds >= 0"):
            tflite_mpc.load_delegate(latency_ms=bad)
        with pytest.raises(ValueError, match=f"bandwidth_mbps='{bad}'.*Mbit/s"):
            tflite_mpc.load_delegate(bandwidth_mbps=bad)
    with pytest.raises(ValueError, match="unknown option 'colour'.*network.*latency_ms.*bandwidth_mbps"):
        tflite_mpc.load_delegate(colour="blue")
    from tflite_mpc import _native
    cfg = ('{"transport": "tcp-insecure", "parties": [{"id": 0, "port": 7000}, {"id": 1, "port": 7001}, '
           '{"id": 2, "port": 7002}]%s}')
    assert _native._fuzz_parse_config((cfg % ', "network": "wan", "latency_ms": 5').encode()) == [7000, 7001, 7002]
    with pytest.raises(ValueError, match="'network'.*none, lan"):
        _native._fuzz_parse_config((cfg % ', "network": "mars"').encode())
    with pytest.raises(ValueError, match="'bandwidth_mbps'.*Mbit/s"):
        _native._fuzz_parse_config((cfg % ', "bandwidth_mbps": "fast"').encode())
    with pytest.raises(ValueError, match="'latency_ms'.*>= 0"):
        _native._fuzz_parse_config((cfg % ', "latency_ms": -2').encode())


def test_tcp_transport_emulates_the_configured_network(digits, baseline):
    """Parties as processes on loopback; every party emulates its outgoing links
    from the configuration file. The chain of messages is the same as in local
    mode (same protocol, same model), so local mode's depth predicts the delay."""
    from distributed_helpers import Parties, client, make_session, write_config, free_ports

    base_s, base_rep, base_out = baseline
    model, x = digits
    with tempfile.TemporaryDirectory() as d:
        _, _, paths = make_session(d, transport="tcp-insecure", timeout=30)
        cfg = write_config(d, free_ports(3), transport="tcp-insecure", ca="", timeout=30, latency_ms=10,
                           truncation="probabilistic")
        parties = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
        try:
            parties.start_all([1, 2])
            it, dl = client(cfg, paths["public"])
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            t0 = time.perf_counter()
            it.invoke()
            secs = time.perf_counter() - t0
            got = it.get_tensor(it.get_output_details()[0]["index"])
            rep = tflite_mpc.report(dl)
            del it, dl
        finally:
            parties.stop()
    assert np.array_equal(got, base_out)
    assert rep["network"] == {"profile": "custom", "latency_ms": 10.0, "bandwidth_mbps": None}
    want = _predicted(base_rep, 10, None)
    assert abs((secs - base_s) - want) <= 0.15 * want, (secs, base_s, want)
