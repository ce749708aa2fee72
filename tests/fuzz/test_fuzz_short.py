"""A bounded run of the delegate fuzzer (tests/fuzz/fuzz_delegate.py): 30 s of fuzzing
with a fixed seed from a small seed corpus; no bug of ours may turn up. Nothing here
depends on speed: the fuzzer's own hang limits are generous (60 s per stage, then a
180 s re-run alone) and only the outcome counters are checked."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("atheris")

FUZZ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_delegate.py")


def test_short_fuzz_run_finds_no_bug(tmp_path):
    stats = tmp_path / "stats.json"
    art = tmp_path / "artifacts"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, FUZZ, "--small-corpus", "--artifacts", str(art), "--stats", str(stats),
                        str(corpus), "-max_total_time=30", "-seed=1", "-rss_limit_mb=0", "-print_final_stats=1"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
    log = p.stdout.decode(errors="replace")
    assert p.returncode == 0, log[-3000:]
    st = json.loads(stats.read_text())
    assert st["iterations"] >= len(os.listdir(corpus)) > 0, (st, log[-2000:])
    details = [open(f[:-len(".tflite")] + ".json").read()[:1500] for f in st["bug_files"]]
    assert st["bugs"] == 0 and st["flaky"] == 0, (st, details)
