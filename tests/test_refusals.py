"""What a user reads when a model cannot run securely (issue 8): every refused node is
listed (not only the first) by its TFLite op name, float regions and float preprocessing
are named as such, `tflite_mpc.check` gives the verdict per node without running MPC,
and SOFTMAX is accepted exactly where TFLite's reference kernel has a result."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tflite_mpc
from tflite_mpc import modelgen
from crafted import OP, Edit, keras, tiny
from secure import check_model


def refuse(b, **opts):
    with pytest.raises(RuntimeError) as e:
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate(**opts)])
    return str(e.value)


def two_abs():
    return tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Lambda(lambda t: tf.abs(t)),
                 keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Lambda(lambda t: tf.abs(t))])


def test_every_refused_node_is_listed_and_check_gives_each_verdict():
    b = two_abs()
    names = modelgen.op_names(b)
    abs_nodes = [i for i, n in enumerate(names) if n == "ABS"]
    assert len(abs_nodes) == 2
    msg = refuse(b)
    assert msg.startswith("tflite-mpc cannot run 2 nodes securely:\n")
    assert "\nThe model is refused (no plaintext fallback)." in msg
    for n in abs_nodes:
        assert f"\n  node {n} (ABS): tflite-mpc has no secure kernel for ABS" in msg
    r = tflite_mpc.check(b)
    assert not r.accepted and [n["node"] for n in r.refused] == abs_nodes
    assert [n["op"] for n in r] == names
    assert {n["status"] for n in r if n["op"] == "CONV_2D"} == {"secure"}
    assert "2 refused -> the model is refused" in str(r)
    with pytest.raises(ValueError, match="check\\(\\) runs no MPC session"):
        tflite_mpc.check(b, parties="parties.json", party=0)
    ok = tflite_mpc.check(modelgen.conv2d(k=3))
    assert ok.accepted and ok.message == "" and [n["status"] for n in ok] == ["secure"]


def test_ops_are_named_by_their_tflite_name_for_every_builtin_code():
    # an op the plugin had no name for ("builtin op"): SIN, COS, ... each code is named
    b = tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Lambda(lambda t: tf.abs(t))])
    e = Edit(b)
    n = e.find(OP.ABS)
    for name in ("SIN", "COS", "ZEROS_LIKE", "SIGN", "RIGHT_SHIFT"):
        e.ops[n].opcodeIndex = e.opcode(getattr(OP, name))
        msg = refuse(e.bytes())
        assert f"cannot run node {n} ({name}) securely: tflite-mpc has no secure kernel for {name}" in msg


def test_a_float_region_without_a_table_form_is_named_with_the_float_op_inside():
    # DEQUANTIZE -> float SIN -> QUANTIZE: SIN is not among the unary float ops computed as a
    # table (ELU, NEG, ... run; see test_delegate_ops), so the region is refused, named.
    b = tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.ELU()])
    e = Edit(b)
    elu = e.find(OP.ELU)
    e.ops[elu].opcodeIndex = e.opcode(OP.SIN)
    msg = refuse(e.bytes())
    assert f"node {elu} (SIN): float32 SIN inside a float region the converter left" in msg
    assert f"node {elu + 1} (QUANTIZE): QUANTIZE closes a float region" in msg
    assert f"node {elu} (SIN), which runs in float" in msg  # the DEQUANTIZE names it too


def test_float_preprocessing_on_the_model_input_suggests_moving_it_to_the_data_owner():
    # a float32 op on the float model input before the QUANTIZE edge
    m = keras.Sequential([keras.Input((6, 6, 3), batch_size=1), keras.layers.Conv2D(4, 3)])
    b = modelgen.convert_int8(m, [np.random.default_rng(0).random((1, 6, 6, 3), dtype=np.float32)
                                  for _ in range(4)], int8_io=False)
    e = Edit(b)
    q = e.find(OP.QUANTIZE)
    x = e.ops[q].inputs[0]
    y = e.tensor([1, 6, 6, 3], 0, "preprocessed")  # float32
    absop = type(e.ops[q])()
    absop.opcodeIndex = e.opcode(OP.ABS)
    absop.inputs, absop.outputs = [x], [y]
    e.ops[q].inputs = [y]
    e.sg.operators = [absop] + list(e.ops)
    msg = refuse(e.bytes())
    assert "node 0 (ABS): float32 ABS on the model input (preprocessing)" in msg
    assert "apply the preprocessing at the data owner" in msg


def test_options_refused_through_the_runtimes_own_loader_give_the_reason():
    for load in (tf.lite.experimental.load_delegate,
                 pytest.importorskip("ai_edge_litert.interpreter").load_delegate):
        with pytest.raises(ValueError, match="unknown option 'colour'; valid options: protocol"):
            load(tflite_mpc.library_path(), {"colour": "blue"})
        with pytest.raises(ValueError, match="truncation='nearest'"):
            load(tflite_mpc.library_path(), {"truncation": "nearest"})


# ---- SOFTMAX: accepted exactly where TFLite's reference kernel runs

def _softmax_with_scale(scale, beta=1.0):
    m = modelgen._parse(modelgen.softmax(n=10))
    sg = m.subgraphs[0]
    sg.tensors[sg.operators[0].inputs[0]].quantization.scale = [float(scale)]
    sg.operators[0].builtinOptions.beta = float(beta)
    return modelgen._pack(m)


_REF_CHILD = """
import sys, numpy as np
from tflite_mpc import modelgen
b = open(sys.argv[1], "rb").read()
x = modelgen.random_input(b, seed=0)
np.save(sys.argv[2], modelgen.run_tflite(b, x, reference=True)[0])
"""


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_softmax_is_accepted_exactly_where_the_reference_kernel_runs(tmp_path, beta):
    bound = np.float32(2.0 ** -26 / beta)  # beta * scale * 2^26 must exceed 1
    scales = [np.nextafter(bound, np.float32(1)), bound, np.float32(8e-9 / beta)]
    for s in scales:
        b = _softmax_with_scale(s, beta)
        path = tmp_path / "m.tflite"
        path.write_bytes(b)
        # the reference may abort the whole process: run it in a child
        r = subprocess.run([sys.executable, "-c", _REF_CHILD, str(path), str(tmp_path / "y.npy")],
                           capture_output=True, cwd=tmp_path, timeout=300)
        reference_runs = r.returncode == 0
        assert reference_runs == (float(beta) * float(s) * 2.0 ** 26 > 1.0), (s, r.returncode)
        if reference_runs:
            check_model(b, seeds=(0,), pr=False)
        else:
            assert r.returncode == -6  # SIGABRT
            msg = refuse(b, truncation="exact")
            assert "must exceed 1" in msg and "TFLite's reference SOFTMAX aborts the process on this model too" in msg


def test_cli_check_lists_every_node_and_exits_1_when_refused(tmp_path):
    import json
    refused, accepted = tmp_path / "refused.tflite", tmp_path / "ok.tflite"
    refused.write_bytes(two_abs())
    accepted.write_bytes(modelgen.conv2d(k=3))
    r = subprocess.run([sys.executable, "-m", "tflite_mpc", "check", str(refused)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "ABS" in r.stdout and "2 refused -> the model is refused" in r.stdout
    r = subprocess.run([sys.executable, "-m", "tflite_mpc", "check", "--json", str(accepted)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["accepted"] and d["nodes"] == [{"node": 0, "op": "CONV_2D", "status": "secure", "detail": "secure kernel"}]
