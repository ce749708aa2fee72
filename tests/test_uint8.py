"""uint8 (legacy asymmetric) models, the scheme of TF's hosted quantized MobileNets that the
seed paper (Dalskov, Escudero, Keller 2020) evaluates: uint8 activations with any zero point
and uint8 weights with a non-zero zero point.

The stock converter no longer emits such graphs from Keras, so the models here are int8
models (converted with per-tensor weights) rewritten by ``modelgen.to_uint8``, which writes
directly against the TFLite flatbuffer schema: activations +128 (zero point +128), weights
re-quantized asymmetrically in uint8 from their float values, biases re-scaled. The oracle
is TFLite's BUILTIN_REF interpreter on the rewritten model: exact mode bit-identical,
probabilistic mode within 1 LSB."""
import numpy as np
import pytest
import tensorflow as tf

import tflite_mpc
from tflite_mpc import modelgen
from secure import check_model, graph_hash, run_secure

U8 = modelgen._fb.TensorType.UINT8

GRID = [
    ("conv2d", {}),
    ("conv2d", dict(activation="relu6", stride=2)),
    ("conv2d", dict(k=1, cin=8, cout=6, use_bias=False, activation="relu")),
    ("depthwise_conv2d", {}),
    ("depthwise_conv2d", dict(depth_multiplier=2, activation="relu6", stride=2)),
    ("fully_connected", {}),
    ("fully_connected", dict(batch=4, in_features=256, out_features=64)),  # one rounding step (TF 2.21)
    ("fully_connected", dict(batch=2, in_features=64, out_features=16, activation="relu")),
    ("average_pool2d", {}),
    ("average_pool2d", dict(pool=3, stride=2, padding="same")),
    ("max_pool2d", {}),
    ("max_pool2d", dict(pool=3, stride=2, padding="same")),
    ("mean", {}),
    ("mean", dict(keepdims=True)),
    ("mean", dict(h=5, w=7, c=16, keepdims=True, seed=3)),
    ("add", {}),
    ("add", dict(activation="relu")),
    ("softmax", {}),
    ("softmax", dict(n=33, rows=3)),
    ("reshape", {}),
    ("flatten", {}),
] + [("activation", dict(kind=k)) for k in
     ("logistic", "tanh", "hard_swish", "gelu", "leaky_relu", "relu", "relu6", "relu_n1_to_1")]


def _id(case):
    name, kw = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", GRID, ids=[_id(c) for c in GRID])
def test_single_op_uint8(case):
    name, kw = case
    b = modelgen.uint8_op(name, **kw)
    details = modelgen.tensor_details(b)
    io = [d for d in details if not d["is_constant"] and d["dtype"] != "INT32"]
    assert io and all(d["dtype"] == "UINT8" for d in io), [d["dtype"] for d in io]
    check_model(b)


@pytest.mark.parametrize("kind", ["logistic", "tanh", "hard_swish", "gelu", "leaky_relu", "relu6"])
def test_uint8_tables_on_all_256_inputs(kind):
    # every entry of the public table (saturation edges included), both truncation modes
    b = modelgen.uint8_op("activation", kind=kind)
    check_model(b, seeds=(0,), inputs_fn=lambda seed: [np.arange(256, dtype=np.uint8).reshape(1, 256)])


def test_to_uint8_weights_are_asymmetric_and_the_model_matches_the_int8_one():
    b8 = modelgen.conv2d(per_tensor=True)
    b = modelgen.uint8_op("conv2d")
    op = modelgen.op_details(b)[0]
    x, w, bias = op["inputs"]
    assert x["dtype"] == w["dtype"] == op["outputs"][0]["dtype"] == "UINT8" and bias["dtype"] == "INT32"
    assert int(w["zero_points"][0]) not in (0, 128)  # a real legacy asymmetric weight zero point
    assert np.isclose(bias["scales"][0], np.float32(x["scales"][0] * w["scales"][0]))
    # the same reals: int8 input q <-> uint8 input q + 128; outputs agree within a few LSB
    q8 = modelgen.random_input(b8, seed=0)[0]
    y8 = modelgen.dequantize(modelgen.run_tflite(b8, [q8])[0], modelgen.output_details(b8)[0])
    yu = modelgen.dequantize(modelgen.run_tflite(b, [(q8.astype(np.int16) + 128).astype(np.uint8)])[0],
                             modelgen.output_details(b)[0])
    assert np.max(np.abs(y8 - yu)) <= 3 * float(op["outputs"][0]["scales"][0])


@pytest.mark.parametrize("to", ["uint8", "int8"])
@pytest.mark.parametrize("out", [None, (0.02, 7)], ids=["same-reals", "rescaled"])
def test_quantize_between_int8_and_uint8_all_256_inputs(to, out):
    kw = {} if out is None else dict(out_scale=out[0], out_zero_point=out[1] + (0 if to == "uint8" else -128))
    b = modelgen.quantize_int8_uint8(to=to, **kw)
    d = modelgen.input_details(b)[0]
    info = np.iinfo(d["dtype"])
    x = np.arange(info.min, info.max + 1).astype(d["dtype"]).reshape(1, 256)
    want = modelgen.run_tflite(b, [x], reference=True)[0]
    assert want.dtype == (np.uint8 if to == "uint8" else np.int8)
    for mode in ("exact", "probabilistic"):
        got = run_secure(b, [x], mode)[0][0]
        assert got.dtype == want.dtype and np.array_equal(got, want), mode


def test_float_io_edges_of_a_uint8_model():
    # float32 in and out: the data owner quantizes to uint8 before sharing, the recipient
    # dequantizes the revealed uint8 output.
    b = modelgen.uint8_op("conv2d", int8_io=False)
    ops = [o["op"] for o in modelgen.op_details(b)]
    assert ops == ["QUANTIZE", "CONV_2D", "DEQUANTIZE"], ops
    assert modelgen.op_details(b)[0]["outputs"][0]["dtype"] == "UINT8"
    check_model(b)


def test_uint8_graph_io_through_the_interpreter_api():
    b = modelgen.uint8_op("conv2d", activation="relu")
    it = tf.lite.Interpreter(model_content=b, experimental_delegates=[
        tflite_mpc.load_delegate(truncation="exact")])
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert i["dtype"] == np.uint8 and o["dtype"] == np.uint8
    x = modelgen.random_input(b, seed=5)[0]
    it.set_tensor(i["index"], x)
    it.invoke()
    assert np.array_equal(it.get_tensor(o["index"]), modelgen.run_tflite(b, [x], reference=True)[0])


def test_uint8_softmax_with_a_wrong_output_quantization_is_refused():
    b = modelgen.uint8_op("softmax")
    m = modelgen._parse(b)
    sg = m.subgraphs[0]
    sg.tensors[sg.operators[0].outputs[0]].quantization.zeroPoint = [3]
    with pytest.raises(RuntimeError, match=r"SOFTMAX: uint8 output must have scale 1/256 and zero point 0"):
        tf.lite.Interpreter(model_content=modelgen._pack(m), experimental_delegates=[tflite_mpc.load_delegate()])


def test_uint8_bias_bound_is_checked_with_the_uint8_product_bound():
    # |(x + in_off)(w + w_off)| <= 255 * 255 for uint8: a bias the int8 bound (255 * 128 per
    # product) would accept can overflow TFLite's int32 accumulator here; the model owner refuses it.
    b = modelgen.uint8_op("fully_connected", batch=2, in_features=8)
    m = modelgen._parse(b)
    sg = m.subgraphs[0]
    t = sg.tensors[sg.operators[0].inputs[2]]
    v = np.frombuffer(bytes(m.buffers[t.buffer].data), np.int32).copy()
    v[1] = 2**31 - 1 - 8 * 255 * 200
    m.buffers[t.buffer].data = np.frombuffer(v.tobytes(), np.uint8).copy()
    b = modelgen._pack(m)
    with pytest.raises(RuntimeError, match="bias .* of output channel 1 could overflow TFLite's int32 accumulator"):
        run_secure(b, modelgen.random_input(b, seed=0))


def test_mobilenet_v1_uint8_logits_bit_identical():
    # MobileNetV1 0.25_128 in the paper's scheme (logits head: no SOFTMAX), exact mode.
    b = modelgen.mobilenet_v1_uint8(0.25, 128, classifier_activation=None)
    counts = modelgen.op_counts(b)
    assert counts["CONV_2D"] == 15 and counts["DEPTHWISE_CONV_2D"] == 13 and counts["MEAN"] == 1
    w = [d for d in modelgen.tensor_details(b) if d["is_constant"] and d["dtype"] == "UINT8"]
    assert len(w) == 28 and any(int(d["zero_points"][0]) != 0 for d in w)
    check_model(b, seeds=(0, 1), pr=False)


def _digits_secure_vs_plain(n):
    b, x, y, _ = modelgen.digits_cnn_uint8()
    assert x.dtype == np.uint8
    plain = tf.lite.Interpreter(model_content=b, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    sec = tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate(truncation="exact")])
    outs = []
    for it in (plain, sec):
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        res = []
        for k in range(n):
            it.set_tensor(i, x[k:k + 1])
            it.invoke()
            res.append(it.get_tensor(o).copy())
        outs.append(np.concatenate(res))
    assert outs[1].dtype == np.uint8 and np.array_equal(outs[0], outs[1])
    acc = np.mean(np.argmax(outs[1], 1) == y[:n])
    assert acc > 0.9, acc


def test_digits_cnn_uint8_bit_identical_on_the_test_split():
    # every output of the 450 test images bit-identical, hence secure top-1 == plaintext top-1
    _digits_secure_vs_plain(450)


@pytest.mark.slow
def test_mobilenet_v1_uint8_float_io_with_softmax():
    # float32 in and out (QUANTIZE to uint8 at the data owner, DEQUANTIZE at the recipient)
    b = modelgen.mobilenet_v1_uint8(0.25, 128, int8_io=False)
    ops = [o["op"] for o in modelgen.op_details(b)]
    assert ops[0] == "QUANTIZE" and ops[-2:] == ["SOFTMAX", "DEQUANTIZE"], ops
    check_model(b, seeds=(0,), pr=False)


def test_public_model_of_a_uint8_model_has_no_weights_and_the_same_graph_hash():
    from tflite_mpc.cli import strip_model
    b = modelgen.uint8_op("conv2d")
    pub = strip_model(b)
    m = modelgen._parse(pub)
    for t in m.subgraphs[0].tensors:
        buf = m.buffers[t.buffer]
        if buf.data is not None and len(buf.data):
            assert not np.any(np.asarray(buf.data)), t.name
    assert graph_hash(pub) == graph_hash(b)


@pytest.mark.parametrize("variant", ["mixed types", "per-channel uint8 weights"])
def test_unsupported_uint8_variants_are_refused(variant):
    m = modelgen._parse(modelgen.uint8_op("conv2d") if variant != "mixed types" else modelgen.conv2d(per_tensor=True))
    sg = m.subgraphs[0]
    w = sg.tensors[sg.operators[0].inputs[1]]
    if variant == "mixed types":  # int8 activations, uint8 weights
        w.type = U8
        why = r"CONV_2D: int8 input needs int8 weights, got uint8"
    else:
        n = w.shape[0]
        w.quantization.scale = [float(w.quantization.scale[0])] * n
        w.quantization.zeroPoint = [int(w.quantization.zeroPoint[0])] * n
        why = r"filter tensor must be quantized per tensor \(uint8\)"
    with pytest.raises(RuntimeError, match=rf"node 0 \(CONV_2D\).*{why}"):
        tf.lite.Interpreter(model_content=modelgen._pack(m), experimental_delegates=[tflite_mpc.load_delegate()])
