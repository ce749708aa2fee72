"""Short coverage-guided fuzzing runs (atheris) of the wire/handshake parser and
the party configuration parser, and regressions for what fuzzing found. Longer
runs: tests/fuzz/README.md."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = 15  # per target; the targets run side by side


def test_fuzz_targets_run_without_a_crash(tmp_path):
    pytest.importorskip("atheris")
    sys.path.insert(0, os.path.join(HERE, "fuzz"))
    import fuzz_config
    import fuzz_wire

    import resource
    # libFuzzer reads the peak RSS, which a child inherits from this process across fork and exec
    # (Linux keeps the old memory's high-water mark): allow 2 GB above what the tests before used
    rss_limit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 2048
    procs = {}
    for name, mod in (("wire", fuzz_wire), ("config", fuzz_config)):
        corpus = tmp_path / name
        corpus.mkdir()
        for i, s in enumerate(mod.seeds()):
            (corpus / f"seed{i}").write_bytes(s)
        cmd = [sys.executable, mod.__file__, f"-max_total_time={SECONDS}", "-seed=1", "-timeout=10",
               f"-rss_limit_mb={rss_limit}", "-max_len=4096", str(corpus)]
        if name == "config":
            cmd.insert(2, f"-dict={os.path.join(HERE, 'fuzz', 'config.dict')}")
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       cwd=tmp_path, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    for name, p in procs.items():
        out = p.communicate(timeout=SECONDS + 120)[0]
        assert p.returncode == 0 and "Done" in out, f"fuzz target {name} failed:\n{out[-4000:]}"


def config_error(tmp_path, text):
    """What loading the configuration `text` does, in a child process (a crash must not take the tests down)."""
    path = tmp_path / "parties.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    code = ("import tflite_mpc\ntry:\n    tflite_mpc.validate_options({'parties': %r, 'party': '0'})\n"
            "    print('OK')\nexcept ValueError as e:\n    print('ValueError:', e)\n") % str(path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, f"exit code {r.returncode}: {r.stderr[-2000:]}"
    return r.stdout


def valid_config(**kw):
    cfg = {"transport": "tcp-insecure", "parties": [{"id": i, "port": 7000 + i} for i in range(3)]}
    cfg.update(kw)
    return json.dumps(cfg)


def test_config_parser_regressions(tmp_path):
    assert "OK" in config_error(tmp_path, valid_config())
    # deep nesting overflowed the parser's stack (SIGSEGV)
    assert "nested too deeply" in config_error(tmp_path, "[" * 200000)
    # an infinite or huge timeout overflowed the deadline arithmetic
    assert "number out of range" in config_error(tmp_path, valid_config(timeout=1e999).replace("Infinity", "1e999"))
    assert "'timeout' must be" in config_error(tmp_path, valid_config(timeout=1e8))
    # a port or id beyond int: undefined conversion
    bad = json.loads(valid_config())
    bad["parties"][1]["port"] = 1e300
    assert "out of range" in config_error(tmp_path, json.dumps(bad))
    # found by fuzzing (UBSan): nan, inf or 1e300 converted to int for a role or port
    for v in ("nan", "1e300", "-inf", "0x10"):
        out = config_error(tmp_path, valid_config(roles={"data_owner": 1}).replace('"data_owner": 1', '"data_owner": ' + v))
        assert "ValueError: party configuration" in out, (v, out)
    assert "number out of range" in config_error(tmp_path, valid_config(roles={"output_to": [1e300]}))
    # found by fuzzing: a key that is not UTF-8 made the error a UnicodeDecodeError
    out = config_error(tmp_path, b'{"proto\xa4\ncol": 1}')
    assert "ValueError: party configuration" in out and "unknown key 'proto??col'" in out, out


def test_frame_reader_entry_points():
    from tflite_mpc import _native

    f = lambda k, p: (len(p) | (k << 56)).to_bytes(8, "little") + p  # noqa: E731
    frames, bye = _native._fuzz_parse_frames(f(0, b"a" * 8) + f(2, b"done"), [8], 3, False)
    assert frames == [b"a" * 8] and bye == "done"
    with pytest.raises(RuntimeError, match="expected a message of 16 bytes, got a frame of 8 bytes"):
        _native._fuzz_parse_frames(f(0, b"a" * 8), [16], 64, False)
    with pytest.raises(RuntimeError, match="handshake message too large"):
        _native._fuzz_parse_frames((1 << 56 | 5000).to_bytes(8, "little"), [], 64, True)
    with pytest.raises(RuntimeError, match="party id is not a number"):
        _native._fuzz_parse_frames(f(1, b"x\nhello"), [], 64, True)
