"""The delegate as a user meets it: options, refusals, errors, cost reports,
graphs with shape arithmetic, and the same plugin in each installed runtime."""
import numpy as np
import pytest
import tensorflow as tf

from tflite_mpc import modelgen
import tflite_mpc
from secure import check_model, run_secure

keras = modelgen.keras


def _tiny(layers, shape=(6, 6, 3), batch=1, int8_io=True):
    m = keras.Sequential([keras.Input(shape, batch_size=batch)] + layers)
    rng = np.random.default_rng(0)
    reps = [rng.random((1,) + shape, dtype=np.float32) for _ in range(8)]
    return modelgen.convert_int8(m, reps, int8_io=int8_io)


def test_library_path_loads_with_tf_loader():
    d = tf.lite.experimental.load_delegate(tflite_mpc.library_path(), {"protocol": "rep3", "truncation": "exact"})
    b = modelgen.conv2d(k=3)
    x = modelgen.random_input(b, seed=3)
    got = modelgen.run_tflite(b, x, reference=False, delegates=[d])
    assert np.array_equal(got[0], modelgen.run_tflite(b, x, reference=True)[0])


def test_bad_options_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown option 'colour'.*valid options: protocol"):
        tflite_mpc.load_delegate(colour="blue")
    with pytest.raises(ValueError, match="truncation='nearest'.*probabilistic.*exact"):
        tflite_mpc.load_delegate(truncation="nearest")
    with pytest.raises(ValueError, match="valid protocols are rep3"):
        tflite_mpc.load_delegate(protocol="spdz")
    with pytest.raises(ValueError, match="expected 0, 1 or 2"):
        tflite_mpc.load_delegate(data_owner=5)
    # the runtime's own loader reports our message too
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        tf.lite.experimental.load_delegate(tflite_mpc.library_path(), {"colour": "blue"})


def test_unsupported_op_on_secret_data_is_refused_naming_it():
    b = _tiny([keras.layers.Conv2D(4, 3), keras.layers.Lambda(lambda t: tf.abs(t))])
    assert "ABS" in modelgen.op_names(b)
    node = modelgen.op_names(b).index("ABS")
    with pytest.raises(RuntimeError, match=rf"node {node} \(ABS\).*no secure kernel.*refused"):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])


def test_float_model_is_refused():
    m = keras.Sequential([keras.Input((6, 6, 3), batch_size=1), keras.layers.Conv2D(4, 3)])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    b = conv.convert()  # plain float32 model
    with pytest.raises(RuntimeError, match=r"node 0 \(CONV_2D\).*must be int8"):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])


def test_malformed_model_gives_python_error():
    with pytest.raises(ValueError):
        tf.lite.Interpreter(model_content=b"not a flatbuffer at all", experimental_delegates=[tflite_mpc.load_delegate()])


def test_wrong_input_shape_and_dtype():
    b = modelgen.conv2d(k=3)
    it = tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])
    it.allocate_tensors()
    idx = it.get_input_details()[0]["index"]
    with pytest.raises(ValueError):
        it.set_tensor(idx, np.zeros((1, 9, 9, 3), dtype=np.int8))
    with pytest.raises(ValueError):
        it.set_tensor(idx, np.zeros((1, 8, 8, 3), dtype=np.float32))
    it.resize_tensor_input(idx, [2, 8, 8, 3])
    with pytest.raises(RuntimeError, match="changed shape"):
        it.allocate_tensors()


def test_report_has_layers_bytes_and_rounds():
    b = modelgen.conv2d(k=3, activation="relu")
    _, rep = run_secure(b, modelgen.random_input(b), "exact")
    assert [l["op"] for l in rep["layers"]] == ["share weights", "CONV_2D"]  # first run shares the weights
    assert len(rep["parties"]) == 3
    for p in rep["parties"]:
        assert p["bytes_sent"] > 0 and p["rounds"] > 0
    assert rep["seconds"] > 0
    # every party runs the same number of rounds
    assert len({p["rounds"] for p in rep["layers"][1]["parties"]}) == 1


def test_unknown_batch_graph_with_shape_arithmetic():
    # Without a fixed batch Keras Flatten becomes SHAPE/STRIDED_SLICE/PACK/RESHAPE: the
    # shape ops stay public in TFLite, the data path runs in (several) secure partitions.
    b = _tiny([keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(5)], batch=None)
    ops = modelgen.op_names(b)
    assert "SHAPE" in ops and "STRIDED_SLICE" in ops and "PACK" in ops
    check_model(b)


def test_float_io_model_end_to_end():
    b = _tiny([keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(), keras.layers.Flatten(),
               keras.layers.Dense(5)], int8_io=False)
    assert modelgen.op_names(b)[0] == "QUANTIZE" and modelgen.op_names(b)[-1] == "DEQUANTIZE"
    check_model(b, exact_bound=0, pr_bound=3)  # probabilistic: 1 LSB per op, compounding over 3 ops


def test_ai_edge_litert_runtime():
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    b = modelgen.conv2d(k=3, activation="relu6")
    d = litert.load_delegate(tflite_mpc.library_path(), {"truncation": "exact"})
    it = litert.Interpreter(model_content=b, experimental_delegates=[d])
    it.allocate_tensors()
    x = modelgen.random_input(b, seed=5)[0]
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    assert np.array_equal(got, modelgen.run_tflite(b, [x], reference=True)[0])
    assert tflite_mpc.report(d)["layers"][-1]["op"] == "CONV_2D"


def test_plaintext_op_on_weights_is_refused():
    # Constant weights are the model owner's secret even where no input data flows: a
    # float16-weight model starts with DEQUANTIZE nodes that read only weights. They must
    # be claimed (and, having no secure kernel for fp16, refused), never left to TFLite.
    m = keras.Sequential([keras.Input((6, 6, 3), batch_size=1), keras.layers.Conv2D(4, 3)])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    b = conv.convert()
    ops = modelgen.op_names(b)
    assert ops[0] == "DEQUANTIZE", ops
    with pytest.raises(RuntimeError, match=r"(?s)node 0 \(DEQUANTIZE\).*refused"):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])


EXIT_SCRIPT = """
import sys, tflite_mpc
from tflite_mpc import modelgen

def main():
    b = open(sys.argv[1], "rb").read()
    d = tflite_mpc.load_delegate(truncation="exact")
    Interpreter, _, _ = modelgen._interp_api()
    it = Interpreter(model_content=b, experimental_delegates=[d])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], modelgen.random_input(b)[0])
    it.invoke()
    print("done")
    return 0   # the delegate and interpreter are collected here, before exit

sys.exit(main())
"""


def test_process_exits_cleanly_after_secure_inference(tmp_path):
    # Regression: when the delegate was collected before interpreter exit, the plan kept
    # for reports was destroyed during static destruction and freed memory twice
    # ("double free or corruption", exit code 134).
    import subprocess
    import sys
    (tmp_path / "m.tflite").write_bytes(modelgen.conv2d(k=3, cin=32, cout=64))
    r = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "m.tflite")], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and "done" in r.stdout, (r.returncode, r.stderr[-2000:])


# ---------------------------------------------------------------- security review (issue 7), items 4 and 5
@pytest.mark.parametrize("value, why", [
    ([0, 0, 0], "listed twice"), ([0, 2, 0], "listed twice"), ("1,1", "listed twice"), (3, "'3' is not one"),
    (-1, "'-1' is not one"), (1.5, "'1.5' is not one"), (True, "'true' is not one"), ("a", "'a' is not one"),
    ("", "'' is not one"), ("0,", "'' is not one"), ([], "'' is not one"),
])
def test_output_to_option_is_validated(value, why):
    with pytest.raises(ValueError, match=rf"output_to=.*{why}"):
        tflite_mpc.load_delegate(output_to=value)
    if not isinstance(value, (list, bool)):  # the runtime's own loader gets the same error
        with pytest.raises(ValueError, match=rf"output_to=.*{why}"):
            tf.lite.experimental.load_delegate(tflite_mpc.library_path(), {"output_to": str(value)})


@pytest.mark.parametrize("key", ["data_owner", "model_owner", "party"])
@pytest.mark.parametrize("value", [3, -1, 1.5, True, "x", "01", " 1", ""])
def test_party_id_options_are_validated(key, value):
    with pytest.raises(ValueError, match=rf"{key}=.*expected 0, 1 or 2"):
        tflite_mpc.validate_options({key: value})


def test_output_to_lists_are_accepted():
    assert tflite_mpc.validate_options({"output_to": [2, 0]}) == {"output_to": "2,0"}
    assert tflite_mpc.validate_options({"output_to": "0,1,2"}) == {"output_to": "0,1,2"}


def _config(tmp_path, roles):
    import json
    cfg = {"protocol": "rep3", "transport": "tcp-insecure", "roles": roles,
           "parties": [{"id": i, "host": "127.0.0.1", "port": 7000 + i} for i in range(3)]}
    path = tmp_path / "parties.json"
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.parametrize("roles, why", [
    ({"output_to": [0, 0, 0]}, "lists party 0 twice"),
    ({"output_to": [1, 2, 1]}, "lists party 1 twice"),
    ({"output_to": [0, "1"]}, r"entry of 'output_to' must be a party id .* got the string \"1\""),
    ({"output_to": [0, 1.5]}, "entry of 'output_to' must be a party id .* got 1.5"),
    ({"output_to": [True]}, "got true"),
    ({"output_to": [None]}, "got null"),
    ({"output_to": 3}, "'output_to' must be a party id"),
    ({"output_to": "0"}, "'output_to' must be a party id"),
    ({"output_to": []}, "at least one party"),
    ({"data_owner": "0"}, r"role 'data_owner' must be a party id 0, 1 or 2 .* got the string \"0\""),
    ({"data_owner": 1.5}, "role 'data_owner' must be a party id"),
    ({"model_owner": True}, "role 'model_owner' must be a party id"),
    ({"model_owner": 7}, "role 'model_owner' must be a party id"),
    ({"outputs_to": [1]}, "unknown role 'outputs_to'"),
    ([0, 1], "'roles' must be an object"),
])
def test_party_configuration_roles_are_validated(tmp_path, roles, why):
    path = _config(tmp_path, roles)
    with pytest.raises(ValueError, match=why):
        tflite_mpc.validate_options({"parties": path, "party": 0})


def test_party_configuration_valid_roles(tmp_path):
    path = _config(tmp_path, {"data_owner": 2, "model_owner": 0, "output_to": [2, 0]})
    tflite_mpc.validate_options({"parties": path, "party": 1})


def test_debug_checks_refused_in_distributed_mode(tmp_path):
    # One party with debug_checks would send shares to another, which then holds all three.
    path = _config(tmp_path, {"output_to": [0]})
    with pytest.raises(ValueError, match="debug_checks=true is refused in distributed mode"):
        tflite_mpc.validate_options({"parties": path, "party": 1, "debug_checks": True})
    tflite_mpc.validate_options({"parties": path, "party": 1, "debug_checks": False})
    tflite_mpc.validate_options({"debug_checks": True})  # local mode: allowed (documented as insecure)


def test_fc_rounding_option():
    # TF 2.21's reference FULLY_CONNECTED rounds once; fc_rounding=double (tflite-runtime
    # 2.14's arithmetic) differs from it by 1 in a few places on a large layer.
    b = modelgen.fully_connected(batch=16, in_features=512, out_features=4096)
    x = modelgen.random_input(b, seed=0)
    want = modelgen.run_tflite(b, x, reference=True)[0].astype(int)
    got, rep = run_secure(b, x, "exact")
    assert rep["fc_rounding"] == "single" and np.array_equal(got[0], want)
    got, rep = run_secure(b, x, "exact", fc_rounding="double")
    diff = np.abs(got[0].astype(int) - want)
    assert rep["fc_rounding"] == "double" and diff.max() == 1 and 0 < (diff > 0).sum() < 100
    with pytest.raises(ValueError, match="fc_rounding='twice'.*auto.*single.*double"):
        tflite_mpc.load_delegate(fc_rounding="twice")


def test_nothing_of_an_inference_stays_in_memory_after_its_delegate():
    """Item 10: once the interpreter and its delegate are gone, the plan (session,
    weight shares) is gone and the pool's cached blocks are wiped; the last report
    stays readable (a copy)."""
    import gc
    from tflite_mpc import _native
    model = modelgen.conv2d(h=32, w=32, cin=8, cout=16)  # buffers large enough to be pooled
    d = tflite_mpc.load_delegate(truncation="exact")
    it = tf.lite.Interpreter(model_content=model, experimental_delegates=[d])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], modelgen.random_input(model)[0])
    it.invoke()
    assert _native._pool_cached_nonzero_bytes() > 0
    del it, d
    gc.collect()
    assert _native._pool_cached_nonzero_bytes() == 0
    assert tflite_mpc.report(None)["layers"]
