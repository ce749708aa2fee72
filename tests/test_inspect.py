"""The cost model (delegate option estimate, tflite_mpc.cost, `tflite-mpc inspect`): estimated
without running MPC on the model, it matches a measured run exactly in rounds and within 2% in
bytes per party (the issue asks for 10%) on MobileNetV1 and the digits CNN, in both truncation
modes; the network time it predicts matches an emulated run."""
import json
import subprocess
import sys

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import cost, modelgen
from crafted import keras, tiny


@pytest.fixture(scope="module")
def models():
    return {"digits": modelgen.digits_cnn()[0], "mobilenet_v1_025_128": modelgen.mobilenet_v1(alpha=0.25, size=128)}


def measured(model, truncation, **opt):
    d = tflite_mpc.load_delegate(truncation=truncation, **opt)
    it = modelgen._interpreter(model, reference=False, delegates=[d])
    it.allocate_tensors()
    for det, x in zip(it.get_input_details(), modelgen.random_input(model, seed=1)):
        it.set_tensor(det["index"], x)
    it.invoke()
    return dict(tflite_mpc.report(d))


@pytest.mark.parametrize("truncation", ["probabilistic", "exact"])
@pytest.mark.parametrize("name", ["digits", "mobilenet_v1_025_128"])
def test_estimate_matches_a_measured_run(models, name, truncation):
    model = models[name]
    est = cost.estimate(model, truncation=truncation)
    real = measured(model, truncation)
    assert est["estimated"] is True and real["estimated"] is False
    assert [(layer["node"], layer["op"]) for layer in est["layers"]] == [(layer["node"], layer["op"])
                                                                         for layer in real["layers"]]
    for le, lr in zip(est["layers"], real["layers"]):
        for pe, pr in zip(le["parties"], lr["parties"]):
            assert pe["rounds"] == pr["rounds"], (le["op"], le["node"])
            assert pe["depth"] == pr["depth"], (le["op"], le["node"])
            # per layer and party: within 5% (per-party shares of a sampled call may shift a little)
            assert abs(pe["bytes_sent"] - pr["bytes_sent"]) <= 0.05 * pr["bytes_sent"] + 64, (le["op"], le["node"])
    for pe, pr in zip(est["parties"], real["parties"]):
        assert pe["rounds"] == pr["rounds"]
        assert abs(pe["bytes_sent"] - pr["bytes_sent"]) <= 0.02 * pr["bytes_sent"]
        assert abs(pe["bytes_recv"] - pr["bytes_recv"]) <= 0.02 * pr["bytes_recv"]
        for j in range(3):
            assert abs(pe["bytes_sent_to"][j] - pr["bytes_sent_to"][j]) <= 0.02 * pr["bytes_sent_to"][j]
        assert pe["seconds"] > 0


def test_estimate_computes_nothing_and_is_local_only(models):
    model = models["digits"]
    d = tflite_mpc.load_delegate(truncation="exact", estimate=True)
    it = modelgen._interpreter(model, reference=False, delegates=[d])
    it.allocate_tensors()
    x = modelgen.random_input(model, seed=2)
    it.set_tensor(it.get_input_details()[0]["index"], x[0])
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    assert not out.any()  # zeros: nothing was evaluated
    assert tflite_mpc.report(d)["estimated"] is True
    with pytest.raises(ValueError, match="estimate=true runs no session"):
        tflite_mpc.load_delegate(estimate=True, parties="parties.json", party=0)
    with pytest.raises(ValueError, match="option estimate='maybe'"):
        tflite_mpc.load_delegate(estimate="maybe")
    with pytest.raises(ValueError, match="debug_checks=true cannot go with estimate=true"):
        tflite_mpc.load_delegate(estimate=True, debug_checks=True)


def test_network_prediction_matches_an_emulated_run(models):
    """The wan prediction of the estimate against a run over the emulated wan (digits CNN: 135
    rounds, latency-bound), within 15% as the emulation's own fidelity test."""
    model = models["digits"]
    est = cost.estimate(model, truncation="exact")
    want = cost.network_seconds(est, *cost.NETWORKS["wan"])["seconds"]
    d = tflite_mpc.load_delegate(truncation="exact", network="wan")
    it = modelgen._interpreter(model, reference=False, delegates=[d])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], modelgen.random_input(model, seed=3)[0])
    it.invoke()  # the first inference shares the weights, as the estimate counts
    got = tflite_mpc.report(d)["seconds"]
    assert abs(got - want) <= 0.15 * got, (got, want)


def test_parse_network():
    assert cost.parse_network("wan") == ("wan", 40.0, 100.0)
    assert cost.parse_network("2.5,1000")[1:] == (2.5, 1000.0)
    for bad in ["", "fast", "40", "40,0", "-1,100", "a,b", "1,2,3"]:
        with pytest.raises(ValueError, match="expected lan, regional, wan or RTT_MS,MBPS"):
            cost.parse_network(bad)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tflite_mpc", "inspect", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_inspect(models, tmp_path):
    path = tmp_path / "digits.tflite"
    path.write_bytes(models["digits"])
    r = _cli(path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["node", "op", "output", "quantization", "status"]
    assert "6 nodes: 6 secure, 0 public, 0 refused -> the model is accepted" in r.stdout
    assert any(line.split()[:2] == ["0", "CONV_2D"] and "1x8x8x8 int8" in line and "secure" in line for line in lines)
    assert "rep3 probabilistic" in r.stdout and "rep3 exact" in r.stdout
    first = next(line for line in lines if line.startswith("total, first")).split()
    later = next(line for line in lines if line.startswith("total, next")).split()
    # rounds, probabilistic / exact: 135 / 136 with the weights' sharing (6) and the opening of
    # the output (1); probabilistic's shortened multiplier saves one carry level in one layer
    assert (first[3], first[6], later[3], later[6]) == ("135", "136", "129", "130"), (first, later)
    assert "On wan (40 ms RTT, 100 Mbit/s)" in r.stdout
    assert "cuda" not in r.stderr.lower() and "absl" not in r.stderr.lower()

    r = _cli(path, "--json", "--truncation", "exact", "--network", "2,1000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["accepted"] and [n["op"] for n in d["nodes"]] == modelgen.op_names(models["digits"])
    assert d["network"] == {"name": "2 ms RTT, 1000 Mbit/s", "rtt_ms": 2.0, "mbps": 1000.0}
    (e,) = d["estimates"]
    assert e["truncation"] == "exact" and e["totals"]["rounds"] == 135
    assert e["totals"]["first"]["rounds"] == 136 and e["totals"]["next"]["rounds"] == 130
    depth = sum(max(p["depth"] for p in layer["parties"]) for layer in e["report"]["layers"] if layer["node"] >= 0)
    depth += max(p["depth"] for p in e["report"]["reveal_outside"])  # the outputs, opened after the last layer
    assert e["network"]["next"]["latency_s"] == pytest.approx(depth * 1e-3)

    for bad in [["--network", "fast"], ["--truncation", "round"], ["--protocol", "foo"]]:
        r = _cli(path, *bad, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = _cli(tmp_path / "missing.tflite", cwd=tmp_path)
    assert r.returncode == 2 and "no such model" in r.stderr and "Traceback" not in r.stderr


def test_cli_inspect_names_the_refused_nodes(tmp_path):
    import tensorflow as tf

    path = tmp_path / "abs.tflite"
    path.write_bytes(tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Lambda(lambda t: tf.abs(t))]))
    r = _cli(path, cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "tflite-mpc has no secure kernel for ABS" in r.stdout and "1 refused -> the model is refused" in r.stdout
    assert "Estimated cost" not in r.stdout
    d = json.loads(_cli(path, "--json", cwd=tmp_path).stdout)
    assert not d["accepted"] and d["estimates"] == [] and "ABS" in d["message"]
    assert [n["status"] for n in d["nodes"]].count("refused") == 1
    assert np.array(d["nodes"][0]["outputs"][0]["shape"]).size == 4
