"""The `tflite-mpc` commands run, eval and bench (and the party's log levels), each as a
subprocess `python -m tflite_mpc ...`: exit codes, the lines a user reads, --json, bad
input (exit code 2, one line, no traceback), and no TensorFlow noise on stderr."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import modelgen

# the package this test imported (the source tree in development, site-packages after pip install)
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tflite_mpc.__file__)))
NOISE = re.compile(r"cuda|onednn|absl|tensorflow|xnnpack|deprecat|Traceback", re.I)


def cli(*args, timeout=180, **kw):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command quiets TensorFlow itself
    kw.setdefault("cwd", tempfile.gettempdir())  # `python -m` puts the cwd first on sys.path: not the source tree
    return subprocess.run([sys.executable, "-m", "tflite_mpc", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits CNN (int8 in and out), its test split as an .npz, one sample as .npy."""
    d = tmp_path_factory.mktemp("cli")
    model, x, y, _ = modelgen.digits_cnn()
    (d / "digits.tflite").write_bytes(model)
    np.savez(d / "test.npz", x=x, y=y)
    np.save(d / "one.npy", x[5:6])
    (d / "labels.txt").write_text("\n".join(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                             "nine"]) + "\n")
    return d, model, x, y


def test_run_npy_exact_agrees_with_tflite_and_stderr_is_quiet(digits):
    d, model, x, _ = digits
    want = modelgen.run_tflite(model, [x[5:6]], reference=True)[0]
    r = cli("run", d / "digits.tflite", "--input", d / "one.npy", "--truncation", "exact", "--labels",
            d / "labels.txt", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # quiet: no TensorFlow / TFLite lines at all
    label = (d / "labels.txt").read_text().split()[int(np.argmax(want))]
    assert f"top-1: secure {label}, plaintext {label}: agree" in r.stdout, r.stdout
    assert "max difference: 0 LSB (10/10 outputs identical)" in r.stdout, r.stdout
    top = r.stdout.split("top-1:")[0]  # the top-k table (the report's table follows)
    ranks = [line.split() for line in top.splitlines() if re.match(r"\s+[123]\s", line)]
    assert len(ranks) == 3 and ranks[0][1] == label and ranks[0][3] == label, r.stdout
    assert re.search(r"^bytes sent: P0 [\d.]+ MB, P1 [\d.]+ MB, P2 [\d.]+ MB; rounds: \d+$", r.stdout, re.M)
    after = r.stdout.split("\nbytes sent: ", 1)[1].splitlines()[1:]
    assert any(line.strip() for line in after), r.stdout  # the report follows


def test_run_argmax_and_no_compare(digits):
    d, model, x, _ = digits
    want = int(np.argmax(modelgen.run_tflite(model, [x[5:6]], reference=True)[0]))
    r = cli("run", d / "digits.tflite", "--input", d / "one.npy", "--argmax", "--top-k", "2")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "secure (MPC, argmax only)" in r.stdout and "output argmax" in r.stdout, r.stdout
    assert f"top-1: secure class {want}, plaintext class {want}: agree" in r.stdout, r.stdout
    assert "max difference" not in r.stdout, r.stdout  # no values are revealed to compare
    r = cli("run", d / "digits.tflite", "--input", d / "one.npy", "--no-compare", "--top-k", "2")
    assert r.returncode == 0 and "plaintext" not in r.stdout and "top-1:" not in r.stdout, r.stdout
    assert re.search(rf"^   1 +class {want} ", r.stdout, re.M), r.stdout


def test_run_under_tensorflow_runtime_filters_its_start_up_noise(digits):
    d, model, x, _ = digits
    r = cli("run", d / "digits.tflite", "--input", d / "one.npy", "--runtime", "tensorflow")
    assert r.returncode == 0, r.stderr
    assert not NOISE.search(r.stderr), r.stderr
    assert re.search(r"top-1: secure class \d, plaintext class \d: agree", r.stdout), r.stdout


def test_run_image_and_float_array(digits, tmp_path):
    from PIL import Image

    d, model, _, _ = digits
    _, xf, _, _ = modelgen.digits_data()
    Image.fromarray((xf[7, :, :, 0] * 255).round().astype(np.uint8)).resize((32, 32)).save(tmp_path / "digit.png")
    np.save(tmp_path / "float.npy", xf[7])  # float values: quantized with the input's scale and zero point
    for inp in ("digit.png", "float.npy"):
        r = cli("run", d / "digits.tflite", "--input", tmp_path / inp, "--truncation", "exact")
        assert r.returncode == 0 and r.stderr == "", (inp, r.stderr)
        assert "agree" in r.stdout and "max difference: 0 LSB" in r.stdout, (inp, r.stdout)
    # the float array gives what the model's own quantization of it gives
    want = modelgen.run_tflite(model, [modelgen.quantize(xf[7:8], modelgen.input_details(model)[0])])[0]
    assert f"plaintext class {int(np.argmax(want))}: agree" in r.stdout, r.stdout


@pytest.mark.parametrize("args, message", [
    (["{d}/missing.tflite", "--input", "{d}/one.npy"], "no such model: "),
    (["{d}/digits.tflite", "--input", "{d}/missing.npy"], "no such input file: "),
    (["{d}/digits.tflite", "--input", "{d}/wrong.npy"], "has shape [3, 5] (15 values); the model's input"),
    (["{d}/digits.tflite", "--input", "{d}/test.npz", "--key", "z"], "has no array 'z'; it has x, y"),
    (["{d}/digits.tflite", "--input", "{d}/ints.npy"], "is int64; the model's input is int8"),
    (["{d}/digits.tflite", "--input", "{d}/one.npy", "--output-to", "7"], "option output_to='7'"),
    (["{d}/labels.txt", "--input", "{d}/one.npy"], "error: "),
    (["{d}/digits.tflite", "--input", "{d}/one.npy", "--parties", "{d}/none.json", "--party", "0"],
     "no such party configuration"),
    (["{d}/digits.tflite", "--input", "{d}/truncated.npz"], "cannot read "),
    (["{d}/digits.tflite", "--input", "{d}/one.npy", "--top-k", "0"], "--top-k 0: expected at least 1"),
])
def test_run_bad_input_exit_code_2_one_line(digits, args, message):
    d = digits[0]
    np.save(d / "wrong.npy", np.zeros((3, 5), np.float32))
    np.save(d / "ints.npy", np.zeros(64, np.int64))
    np.savez(d / "truncated.npz", x=np.zeros((4, 8, 8, 1), np.float32))
    (d / "truncated.npz").write_bytes((d / "truncated.npz").read_bytes()[:100])
    r = cli("run", *[a.format(d=d) for a in args])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("tflite-mpc run: error: ") and message in r.stderr, r.stderr


def test_run_refused_model_exit_code_1_names_the_nodes(tmp_path):
    from test_refusals import two_abs  # conv, ABS, conv, ABS: ABS has no secure kernel

    (tmp_path / "abs.tflite").write_bytes(two_abs())
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 6, 4), np.float32))
    r = cli("run", tmp_path / "abs.tflite", "--input", tmp_path / "x.npy")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("tflite-mpc run: failed: tflite-mpc cannot run 2 nodes securely"), r.stderr
    assert "node 1 (ABS)" in r.stderr and "node 3 (ABS)" in r.stderr, r.stderr


def test_eval_exact_reports_tflite_accuracy_and_full_agreement(digits):
    d, model, x, y = digits
    n = 60
    plain_acc = float(np.mean(modelgen.classify(model, x[:n], reference=True) == y[:n]))
    r = cli("eval", d / "digits.tflite", "--data", d / "test.npz", "--limit", n, "--truncation", "exact", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["samples"] == n and res["truncation"] == "exact"
    assert res["plain_accuracy"] == plain_acc and res["secure_accuracy"] == plain_acc, res
    assert res["top1_agreement"] == 1.0 and res["max_diff"] == 0 and res["identical_outputs"] == n, res
    assert all(b > 0 for b in res["bytes_sent_by_party"]) and res["rounds"] > n, res
    assert "img/s" in r.stderr and not NOISE.search(r.stderr), r.stderr  # the progress bar, nothing else

    r = cli("eval", d / "digits.tflite", "--data", d / "test.npz", "--limit", 40, "--truncation", "exact")
    assert r.returncode == 0, r.stderr
    acc = float(np.mean(modelgen.classify(model, x[:40], reference=True) == y[:40]))
    assert acc < 1.0  # the 40 samples include a misclassified one: the accuracy line is not trivial
    assert f"accuracy: secure {acc:.2%}   plaintext TFLite {acc:.2%}" in r.stdout, r.stdout
    assert "top-1 agreement: 100.00% (40/40)" in r.stdout, r.stdout
    assert "max difference: 0 LSB (40/40 samples with identical outputs)" in r.stdout, r.stdout

    # output=argmax: only the classes are revealed; the same accuracy
    r = cli("eval", d / "digits.tflite", "--data", d / "test.npz", "--limit", n, "--truncation", "exact", "--argmax",
            "--json", "-q")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    res = json.loads(r.stdout)
    assert res["output"] == "argmax" and "max_diff" not in res, res
    assert res["secure_accuracy"] == res["plain_accuracy"] == plain_acc and res["top1_agreement"] == 1.0, res


def test_eval_image_folders_by_class(digits, tmp_path):
    from PIL import Image

    d = digits[0]
    _, xf, _, yf = modelgen.digits_data()
    for i in range(30):
        (tmp_path / "imgs" / str(yf[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((xf[i, :, :, 0] * 255).round().astype(np.uint8)).save(tmp_path / "imgs" / str(yf[i]) / f"{i}.png")
    r = cli("eval", d / "digits.tflite", "--data", tmp_path / "imgs", "--json", "-q", "--truncation", "exact")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # -q: no progress bar
    res = json.loads(r.stdout)
    assert res["samples"] == 30 and res["top1_agreement"] == 1.0, res
    assert res["secure_accuracy"] == res["plain_accuracy"] >= 0.8, res  # folder names are the classes

    r = cli("eval", d / "digits.tflite", "--data", tmp_path / "missing")
    assert r.returncode == 2 and r.stderr.strip() == f"tflite-mpc eval: error: no such data set: {tmp_path}/missing"


def test_bench_json_and_text(digits):
    d = digits[0]
    r = cli("bench", d / "digits.tflite", "--runs", 3, "--warmup", 1, "--json", "--truncation", "exact")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    res = json.loads(r.stdout)
    assert res["runs"] == 3 and res["warmup"] == 1 and res["truncation"] == "exact"
    assert 0 < res["min_s"] <= res["median_s"] <= res["max_s"], res
    assert len(res["bytes_sent_by_party"]) == 3 and min(res["bytes_sent_by_party"]) > 0, res
    assert res["bytes_per_party"] == max(res["bytes_sent_by_party"]) and res["rounds"] > 0, res
    assert res["weight_sharing_bytes"] > 0 and res["first_invoke_s"] > 0 and res["plain_s"] > 0, res

    r = cli("bench", d / "digits.tflite", "--runs", 2, "--network", "lan")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert re.search(r"^secure invoke, 2 runs: min [\d.]+ s   median [\d.]+ s   max [\d.]+ s$", r.stdout, re.M)
    assert "network lan" in r.stdout and re.search(r"^rounds per invoke: \d+", r.stdout, re.M), r.stdout

    r = cli("bench", d / "digits.tflite", "--runs", 0)
    assert r.returncode == 2 and "--runs must be >= 1" in r.stderr and "Traceback" not in r.stderr


def test_distributed_run_and_party_log_levels(digits, tmp_path):
    """`run --parties CONFIG --party 0` as the data owner against two `tflite-mpc party`
    processes: -v logs each inference, -q only failures."""
    from distributed_helpers import make_session

    d, _, x, _ = digits
    want = int(np.argmax(modelgen.run_tflite(digits[1], [x[5:6]], reference=True)[0]))
    cfg, model, paths = make_session(str(tmp_path), transport="tcp-insecure", timeout=30)
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    logs = {i: open(tmp_path / f"party{i}.log", "w") for i in (1, 2)}
    procs = [subprocess.Popen([sys.executable, "-m", "tflite_mpc", "party", "--config", cfg, "--id", "1", "--model",
                               paths["model"], "-v"], stdout=logs[1], stderr=logs[1], env=env, cwd=tmp_path),
             subprocess.Popen([sys.executable, "-m", "tflite_mpc", "party", "--config", cfg, "--id", "2", "--model",
                               paths["public"], "-q"], stdout=logs[2], stderr=logs[2], env=env, cwd=tmp_path)]
    try:
        # the data owner holds the real model here, so it can compare (--compare)
        r = cli("run", paths["model"], "--input", d / "one.npy", "--parties", cfg, "--party", 0, "--compare")
        assert r.returncode == 0, r.stderr
        assert "max difference: 0 LSB" in r.stdout and "party 0 of parties.json" in r.stdout, r.stdout
        r = cli("run", paths["public"], "--input", d / "one.npy", "--parties", cfg, "--party", 0)
        assert r.returncode == 0 and "plaintext" not in r.stdout, r.stdout  # the public model: no comparison
        assert re.search(rf"^   1 +class {want} ", r.stdout, re.M), r.stdout
        r = cli("run", paths["public"], "--input", d / "one.npy", "--parties", cfg, "--party", 0, "--truncation",
                "exact")
        assert r.returncode == 2 and "comes from the party configuration" in r.stderr, r.stderr
        deadline = time.time() + 30
        while "session 2 ended" not in (tmp_path / "party1.log").read_text() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
    log1, log2 = (tmp_path / "party1.log").read_text(), (tmp_path / "party2.log").read_text()
    assert re.search(r"^\[tflite-mpc \d\d:\d\d:\d\d\] party 1: inference 1 done \([\d.]+ s\)$", log1, re.M), log1
    assert "party 1: waiting for the other parties (session 1)" in log1 and "party 1: stopped" in log1, log1
    assert "session 1 ended: party 0 left the session (finished)" in log1, log1
    assert log2 == "", log2  # -q: nothing failed
    assert not NOISE.search(log1), log1


@pytest.mark.parametrize("cmd", [["check", "{d}/missing.tflite"], ["strip", "{d}/missing.tflite", "-o", "{d}/o.tflite"],
                                 ["certs", "--config", "{d}/missing.json", "-o", "{d}/certs"],
                                 ["inspect", "{d}/missing.tflite"]])
def test_missing_files_exit_2_with_one_line(tmp_path, cmd):
    r = cli(*[c.format(d=tmp_path) for c in cmd])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no such" in r.stderr and "missing" in r.stderr, r.stderr
