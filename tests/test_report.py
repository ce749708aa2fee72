"""tflite_mpc.report(delegate): the Report object (table, exports, plot), and in
distributed mode the other parties' figures, which reach the data owner in a cost
message after the outputs are opened."""
import csv
import io
import json
import struct
import sys

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import _native, modelgen
from tflite_mpc.report import Report

from distributed_helpers import Parties, client, infer, make_session


def run_local(model, seed=0, **opts):
    d = tflite_mpc.load_delegate(truncation="exact", **opts)
    x = modelgen.random_input(model, seed=seed)[0]
    modelgen.run_tflite(model, [x], reference=False, delegates=[d])
    return tflite_mpc.report(d)


@pytest.fixture(scope="module")
def digits():
    model = modelgen.digits_cnn()[0]
    return model, run_local(model)


def table(text):
    """(header line, layer rows, total row) of a report's table: the lines between its rules."""
    lines = text.splitlines()
    rules = [k for k, line in enumerate(lines) if line and set(line) == {"-"}]
    assert len(rules) == 2, text
    return lines[rules[0] - 1], lines[rules[0] + 1:rules[1]], lines[rules[1] + 1]


def test_report_is_a_dict_with_the_old_structure(digits):
    _, rep = digits
    assert isinstance(rep, Report) and isinstance(rep, dict)
    assert set(rep) >= {"seconds", "parties", "layers", "reveal", "graph_hash", "fc_rounding", "network"}
    assert rep.parties_seen == [0, 1, 2] and rep["party"] is None
    assert rep["roles"] == {"data_owner": 0, "model_owner": 1, "output_to": [0]}
    assert rep["truncation"] == "exact" and rep["protocol"] == "rep3"
    ops = [layer["op"] for layer in rep["layers"]]
    assert ops == ["share weights", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert rep["layers"][0]["shape"] is None
    assert rep["layers"][1]["shape"] == [1, 8, 8, 8] and rep["layers"][-1]["shape"] == [1, 10]
    for i, tot in enumerate(rep["parties"]):
        for k in ("bytes_sent", "bytes_recv", "rounds"):
            assert tot[k] == sum(layer["parties"][i][k] for layer in rep["layers"])
    # an int8 output is opened outside every layer: not in the totals
    assert rep["reveal_outside"] == rep["reveal"] and rep["reveal"][0]["bytes_recv"] == 8 * 10
    plain = rep.to_dict()
    assert type(plain) is dict and plain == dict(rep)
    plain["layers"].clear()
    assert rep["layers"]  # a deep copy
    assert tflite_mpc.argmax(None) is None


def test_str_is_an_aligned_table_with_one_row_per_layer(digits):
    _, rep = digits
    text = str(rep)
    head, rows, total = table(text)
    assert head.split() == ["node", "op", "output", "shape", "rounds"] + ["ms", "MB", "out", "MB", "in"] * 3
    assert len(rows) == len(rep["layers"])
    assert all(len(line) == len(head) for line in rows + [total]), text  # right-aligned columns
    for line, layer in zip(rows, rep["layers"]):
        cells = line.split()
        assert cells[0] == (str(layer["node"]) if layer["node"] >= 0 else "-")
        assert layer["op"] in line
        if layer["shape"]:
            assert "x".join(map(str, layer["shape"])) in cells
        assert str(layer["parties"][0]["rounds"]) in cells
    cells = total.split()
    assert cells[0] == "total" and int(cells[1]) == rep["parties"][0]["rounds"]
    for i, tot in enumerate(rep["parties"]):
        ms, out, inn = cells[2 + 3 * i: 5 + 3 * i]
        assert ms == f"{tot['seconds'] * 1e3:.1f}"
        assert float(out) == pytest.approx(tot["bytes_sent"] / 1e6, abs=6e-4)
        assert float(inn) == pytest.approx(tot["bytes_recv"] / 1e6, abs=6e-4)
    assert "P0 (data owner, output); P1 (model owner); P2" in text
    assert "truncation exact" in text and "fc_rounding single" in text and "local mode" in text
    depth = max(p["depth"] for p in rep["parties"])
    assert f"rounds {rep['parties'][0]['rounds']}, depth {depth}" in text
    assert "network: not emulated" in text and "not in the rows above" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "bytes_sent" in repr(rep.to_dict()) and len(repr(rep)) < 200


def test_table_shows_the_emulated_network_and_dequantize_outputs():
    model = modelgen.conv2d(int8_io=False)
    rep = run_local(model, network="lan")
    assert [layer["op"] for layer in rep["layers"]][-1] == "DEQUANTIZE"
    assert not any(c["bytes_recv"] or c["rounds"] for c in rep["reveal_outside"])
    assert rep["reveal"][0]["bytes_recv"] > 0  # opened inside the DEQUANTIZE layer ...
    assert rep["layers"][-1]["parties"][0]["bytes_recv"] >= rep["reveal"][0]["bytes_recv"]  # ... counted there
    text = str(rep)
    assert "in the DEQUANTIZE row(s) above" in text
    assert "network emulated: lan, 0.05 ms one-way latency, 10000 Mbit/s per link and direction" in text
    _, rows, _ = table(text)
    assert len(rows) == len(rep["layers"])


def test_to_json_and_to_csv(digits, tmp_path):
    _, rep = digits
    assert json.loads(rep.to_json()) == json.loads(json.dumps(dict(rep)))
    path = tmp_path / "rep.csv"
    assert rep.to_csv(path) is None
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 3 * len(rep["layers"])
    assert rows == list(csv.DictReader(io.StringIO(rep.to_csv())))
    for i in range(3):
        mine = [r for r in rows if r["party"] == str(i)]
        assert sum(int(r["bytes_sent"]) for r in mine) == rep["parties"][i]["bytes_sent"]
        assert sum(int(r["rounds"]) for r in mine) == rep["parties"][i]["rounds"]
        assert all(r["seen"] == "1" for r in mine)
        assert sum(int(r[f"bytes_sent_to_p{j}"]) for r in mine for j in range(3)) == rep["parties"][i]["bytes_sent"]
    assert [r["op"] for r in rows[::3]] == [layer["op"] for layer in rep["layers"]]
    assert rows[3]["shape"] == "1x8x8x8"


def test_plot_writes_a_png(digits, tmp_path):
    pytest.importorskip("matplotlib")
    _, rep = digits
    path = tmp_path / "rep.png"
    fig = rep.plot(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert len(fig.axes) == 6  # time, traffic, cumulative: each with a second axis
    labels = [t.get_text() for t in fig.axes[4].get_xticklabels()]
    assert labels == ["share weights"] + [f"{l['node']} {l['op']}" for l in rep["layers"][1:]]


def test_plot_without_matplotlib_names_the_extra(digits, monkeypatch):
    _, rep = digits
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"tflite-mpc\[plot\]"):
        rep.plot()


# ---------------------------------------------------------------------- the cost message
def test_cost_message_round_trip_and_refusals():
    entries = [(100, 200, 3, 0.5), (0, 8, 1, 1e-6)]
    msg = _native._fuzz_cost_message(2, entries)
    assert len(msg) == 8 * (3 + 8 * len(entries))
    got = _native._fuzz_parse_costs(msg, 2, 2)
    assert [(c["bytes_sent"], c["bytes_recv"], c["rounds"], c["seconds"]) for c in got] == entries

    words = list(struct.unpack(f"<{len(msg) // 8}Q", msg))

    def with_word(k, v):
        w = list(words)
        w[k] = v
        return struct.pack(f"<{len(w)}Q", *w)

    def seconds(x):
        return struct.unpack("<Q", struct.pack("<d", x))[0]

    assert _native._fuzz_parse_costs(msg, 1, 2) == "it names another sender"
    assert _native._fuzz_parse_costs(msg, 2, 3) == "it has the wrong length"
    assert _native._fuzz_parse_costs(msg[:-8], 2, 2) == "it has the wrong length"
    assert _native._fuzz_parse_costs(msg + bytes(8), 2, 2) == "it has the wrong length"
    assert _native._fuzz_parse_costs(b"", 2, 0) == "it has the wrong length"
    assert _native._fuzz_parse_costs(with_word(0, 0), 2, 2) == "it is not a cost message"
    assert _native._fuzz_parse_costs(with_word(2, 1), 2, 2) == "it has the wrong number of entries"
    assert _native._fuzz_parse_costs(with_word(3, 1 << 60), 2, 2) == "a count is out of range"
    assert _native._fuzz_parse_costs(with_word(7, 101), 2, 2) == "its bytes per receiver exceed its bytes sent"
    for bad in (float("nan"), float("inf"), -1.0, 1e300):
        assert _native._fuzz_parse_costs(with_word(10, seconds(bad)), 2, 2) == "a time is out of range", bad
    assert _native._fuzz_parse_costs(with_word(10, seconds(2.5)), 2, 2)[0]["seconds"] == 2.5
    # an announced size beyond the bound is refused before anything is read
    assert _native._fuzz_parse_costs(msg, 2, 1 << 20) == "it has the wrong length"
    rng = np.random.default_rng(0)
    accepted = 0
    for n in range(400):  # a valid header, random entries (small or any): refused, or in range
        e = n % 4
        body = rng.integers(0, 1 << 8 if n % 2 else 1 << 63, size=8 * e, dtype=np.uint64)
        if n % 3 == 0:
            body[7::8] = [seconds(x) for x in rng.uniform(-1, 2, size=e)]
        raw = struct.pack("<3Q", words[0], 1, e) + body.astype("<u8").tobytes()
        out = _native._fuzz_parse_costs(raw, 1, e)
        if isinstance(out, list):
            accepted += 1
            assert len(out) == e
            assert all(0 <= c["seconds"] <= 1e7 and c["bytes_sent"] <= 1 << 53 for c in out)
        else:
            assert out in ("a count is out of range", "a time is out of range",
                           "its bytes per receiver exceed its bytes sent")
    assert accepted > 0


# ---------------------------------------------------------------------- distributed mode
def test_distributed_data_owner_sees_all_three_parties(tmp_path):
    d = str(tmp_path)
    cfg, model, paths = make_session(d)
    x = modelgen.random_input(model, seed=1)[0]
    local = run_local(model, seed=1)
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start_all([1, 2])
        it, dlg = client(cfg, paths["public"])
        for _ in range(2):  # the first inference shares the weights, the second does not
            assert np.array_equal(infer(it, x), modelgen.run_tflite(model, [x], reference=True)[0])
            rep = tflite_mpc.report(dlg)
            assert rep["party"] == 0 and rep.parties_seen == [0, 1, 2] and rep["notes"] == []
            assert all(p["bytes_sent"] > 0 and p["bytes_recv"] > 0 and p["seconds"] > 0 for p in rep["parties"])
            # the remote parties' figures are theirs: the same bytes and rounds as in local mode
            want = local["layers"] if rep["layers"][0]["op"] == "share weights" else local["layers"][1:]
            assert [layer["op"] for layer in rep["layers"]] == [layer["op"] for layer in want]
            for got, ref in zip(rep["layers"], want):
                for i in range(3):
                    for k in ("bytes_sent", "bytes_recv", "rounds", "bytes_sent_to"):
                        assert got["parties"][i][k] == ref["parties"][i][k], (got["op"], i, k)
            for i in range(3):
                assert rep["parties"][i]["bytes_sent"] == sum(l["parties"][i]["bytes_sent"] for l in rep["layers"])
                assert rep["reveal"][i]["bytes_sent"] == local["reveal"][i]["bytes_sent"]
            text = str(rep)
            assert "distributed mode, this process is P0" in text and "not shown" not in text
            head, rows, _ = table(text)
            assert head.split().count("ms") == 3 and len(rows) == len(rep["layers"])
        del it, dlg
    finally:
        ps.stop()
    for pid, p in ps.procs.items():
        assert p.returncode == 0, f"party {pid} did not shut down cleanly"
