"""Conformance: single-op int8 models from the TF converter, run under the
delegate vs the BUILTIN_REF interpreter. truncation=exact must be bit-identical
(SOFTMAX: within 1 LSB), truncation=probabilistic within 1 LSB."""
import numpy as np
import pytest

from tflite_mpc import modelgen
from secure import check_model, run_secure

CONV = [
    dict(k=3), dict(k=1), dict(k=3, stride=2), dict(k=3, padding="valid"), dict(k=3, stride=2, padding="valid"),
    dict(k=3, dilation=2), dict(k=5, padding="valid", dilation=2, h=12, w=11), dict(k=2, stride=2),
    dict(k=3, activation="relu"), dict(k=3, activation="relu6"), dict(k=3, use_bias=False),
    dict(k=3, per_tensor=True), dict(k=1, per_tensor=True, activation="relu6"),
    dict(k=3, cin=8, cout=16, h=7, w=9, stride=2), dict(k=3, batch=2),
    dict(k=3, h=1, w=1), dict(k=5, h=2, w=3),  # SAME filters wider than the map (ResNet50 at 32x32)
]


@pytest.mark.parametrize("p", CONV, ids=[str(p) for p in CONV])
def test_conv2d(p):
    check_model(modelgen.conv2d(**p))


DW = [
    dict(k=3), dict(k=3, stride=2), dict(k=3, padding="valid"), dict(k=3, dilation=2),
    dict(k=3, depth_multiplier=2), dict(k=5, depth_multiplier=3, stride=2), dict(k=3, activation="relu6"),
    dict(k=3, activation="relu"), dict(k=3, use_bias=False), dict(k=3, per_tensor=True),
]


@pytest.mark.parametrize("p", DW, ids=[str(p) for p in DW])
def test_depthwise_conv2d(p):
    check_model(modelgen.depthwise_conv2d(**p))


FC = [dict(), dict(activation="relu"), dict(use_bias=False), dict(per_tensor=True), dict(batch=3),
      dict(seq=4), dict(in_features=300, out_features=40, activation="relu6")]


@pytest.mark.parametrize("p", FC, ids=[str(p) for p in FC])
def test_fully_connected(p):
    check_model(modelgen.fully_connected(**p))


POOL = [dict(pool=2), dict(pool=3, stride=2, padding="same"), dict(pool=3, stride=1, padding="same"),
        dict(pool=3, stride=2, padding="valid", h=9, w=7), dict(pool=2, stride=1),
        dict(pool=3, stride=1, padding="same", h=1, w=1), dict(pool=5, stride=1, padding="same", h=2, w=3)]


@pytest.mark.parametrize("p", POOL, ids=[str(p) for p in POOL])
def test_average_pool2d(p):
    check_model(modelgen.average_pool2d(**p))


@pytest.mark.parametrize("p", POOL, ids=[str(p) for p in POOL])
def test_max_pool2d(p):
    check_model(modelgen.max_pool2d(**p))


ADD = [dict(), dict(scale_a=1.0, scale_b=1.0), dict(scale_a=0.1, scale_b=8.0), dict(activation="relu")]


@pytest.mark.parametrize("p", ADD, ids=[str(p) for p in ADD])
def test_add(p):
    check_model(modelgen.add(**p))


def test_reshape_flatten_squeeze():
    check_model(modelgen.reshape())
    check_model(modelgen.flatten())
    check_model(modelgen.squeeze())


def test_float_io_edges():
    # QUANTIZE on the input edge (data owner), DEQUANTIZE on the output edge (recipient)
    b = modelgen.conv2d(k=3, activation="relu", int8_io=False)
    assert modelgen.op_names(b) == ["QUANTIZE", "CONV_2D", "DEQUANTIZE"]
    check_model(b)


MEAN = [dict(), dict(keepdims=True), dict(h=7, w=7, c=16), dict(h=1, w=1), dict(h=13, w=13, c=3)]


@pytest.mark.parametrize("p", MEAN, ids=[str(p) for p in MEAN])
def test_mean(p):
    check_model(modelgen.mean(**p))


SOFTMAX = [dict(n=10), dict(n=100), dict(n=10, beta=0.5), dict(n=10, beta=2.5), dict(n=16, rows=3),
           dict(n=1000, logit_scale=8.0)]


@pytest.mark.parametrize("p", SOFTMAX, ids=[str(p) for p in SOFTMAX])
def test_softmax(p):
    """SOFTMAX is computed exactly in both modes (bit-identical to BUILTIN_REF). Inputs
    for which TFLite's reference kernel would abort the process (row sum of exps
    >= 2^28) are replaced, since the oracle cannot run them."""
    import int8_ref
    b = modelgen.softmax(**p)
    det = modelgen.input_details(b)[0]
    scale = det["quantization"][0]
    beta = modelgen.op_details(b)[0]["options"].get("beta", 1.0)

    def inputs(seed):
        rng = np.random.default_rng(seed)
        for _ in range(100):
            x = rng.integers(-128, 128, size=det["shape"], dtype=np.int8)
            if seed == 0:
                x.flat[::7] = 127  # ties at the max
            q = x.astype(np.int64)
            e = np.asarray(int8_ref.softmax_exp_table(int8_ref.softmax_params(scale, beta)))[q.max(-1, keepdims=True) - q]
            if not np.any(int8_ref.softmax_would_abort(int8_ref.softmax_sum(e))):
                return [x]
        pytest.skip("no input the reference kernel accepts")
    check_model(b, exact_bound=0, pr_bound=0, inputs_fn=inputs)


# ---------------------------------------------------------------- roles: every data / model owner assignment
# Exact mode, bit-identical, for all 9 (data_owner, model_owner) pairs (a party may hold both).
ROLE_OPS = {
    "conv": lambda: modelgen.conv2d(k=3, activation="relu"),
    "depthwise": lambda: modelgen.depthwise_conv2d(k=3, depth_multiplier=2),
    "fc": lambda: modelgen.fully_connected(batch=2),
    "add": lambda: modelgen.add(),
    "avgpool": lambda: modelgen.average_pool2d(pool=3, stride=2, padding="same"),
    "maxpool": lambda: modelgen.max_pool2d(pool=2),
    "mean": lambda: modelgen.mean(),
    "softmax": lambda: modelgen.softmax(n=10),
}
ROLES = [(d, m) for d in range(3) for m in range(3)]


@pytest.mark.parametrize("op", sorted(ROLE_OPS))
@pytest.mark.parametrize("roles", ROLES, ids=[f"data{d}-model{m}" for d, m in ROLES])
def test_every_owner_assignment(op, roles):
    check_model(ROLE_OPS[op](), seeds=(0,), pr=False, data_owner=roles[0], model_owner=roles[1])


OUTPUT_TO = [[1], [2], [0, 2], [1, 2], [0, 1, 2], [2, 1, 0]]


@pytest.mark.parametrize("to", OUTPUT_TO, ids=[",".join(map(str, t)) for t in OUTPUT_TO])
def test_output_to_variations(to):
    # In local mode every recipient is hosted here: the output is written for each list.
    check_model(modelgen.conv2d(k=3), seeds=(0,), pr=False, output_to=to, data_owner=2, model_owner=1)
    check_model(modelgen.fully_connected(batch=2), seeds=(0,), pr=False, output_to=to)


# ---------------------------------------------------------------- large layers, batch > 1
# FULLY_CONNECTED requantizes with one rounding step (TF 2.21 / LiteRT 2.3 reference
# kernel); with a few hundred thousand outputs the two-step rounding of CONV_2D differs
# from it in a few dozen places (VGG16's Dense 512->4096 at batch 16: 15-21 of 65536).
FC_LARGE = [dict(batch=16, in_features=512, out_features=4096),
            dict(batch=16, in_features=512, out_features=4096, per_tensor=True),
            dict(batch=2, in_features=25088, out_features=16)]
FC_LARGE_SLOW = [dict(batch=4, in_features=25088, out_features=512),
                 dict(batch=8, in_features=4096, out_features=4096, activation="relu"),
                 dict(batch=3, in_features=4096, out_features=1000, per_tensor=True)]


@pytest.mark.parametrize("p", FC_LARGE, ids=[str(p) for p in FC_LARGE])
def test_fully_connected_large(p):
    check_model(modelgen.fully_connected(**p), seeds=(0,), pr=False)


@pytest.mark.slow
@pytest.mark.parametrize("p", FC_LARGE_SLOW, ids=[str(p) for p in FC_LARGE_SLOW])
def test_fully_connected_large_slow(p):
    check_model(modelgen.fully_connected(**p), seeds=(0, 1), pr=False)


# The 1x1 32x32x512->64 case has 65536 outputs: one-step rounding would differ in 31 (CONV_2D rounds twice).
CONV_BATCH = [dict(k=1, h=32, w=32, cin=512, cout=64), dict(k=3, batch=4, h=5, w=5, cin=64, cout=32), dict(k=1, batch=3, h=4, w=4, cin=256, cout=64),
              dict(k=3, batch=2, h=6, w=6, cin=32, cout=16, stride=2, per_tensor=True)]
CONV_BATCH_SLOW = [dict(k=3, batch=8, h=7, w=7, cin=512, cout=128), dict(k=3, batch=4, h=14, w=14, cin=256, cout=64)]


@pytest.mark.parametrize("p", CONV_BATCH, ids=[str(p) for p in CONV_BATCH])
def test_conv2d_large_batch(p):
    check_model(modelgen.conv2d(**p), seeds=(0,), pr=False)


@pytest.mark.slow
@pytest.mark.parametrize("p", CONV_BATCH_SLOW, ids=[str(p) for p in CONV_BATCH_SLOW])
def test_conv2d_large_batch_slow(p):
    check_model(modelgen.conv2d(**p), seeds=(0,), pr=False)


# ---------------------------------------------------------------- element-wise activations, int8 -> int8 QUANTIZE
# Each is a public 256-entry table built with TFLite's reference arithmetic and looked up
# exactly: bit-identical to BUILTIN_REF in both truncation modes, on all 256 input values.
# Calibration N(in_offset, in_scale^2) sets the input (and calibrated output) quantization.
SCALES = [dict(in_scale=3.0), dict(in_scale=0.5, in_offset=1.0), dict(in_scale=20.0, in_offset=-5.0),
          dict(in_scale=0.05, in_offset=-0.02)]
ACTIVATIONS = [dict(kind=k, **s) for k in ("logistic", "tanh", "hard_swish", "gelu", "gelu_approx", "relu",
                                             "relu6", "relu_n1_to_1", "relu_0_to_1") for s in SCALES]
ACTIVATIONS += [dict(kind="leaky_relu", alpha=a, **s) for a in (0.2, 0.01, 1.5) for s in SCALES]
ACTIVATIONS += [dict(kind="quantize", **s) for s in SCALES]
ACTIVATIONS += [dict(kind="quantize", in_scale=2.0, out_scale=os, out_zero_point=oz)
                for os, oz in ((0.01, 5), (1.0, -100), (0.0157, 127), (0.25, -128))]
ACTIVATIONS += [dict(kind="logistic", in_scale=3.0, n=1000, batch=2), dict(kind="hard_swish", in_scale=3.0, n=300)]


PRELU = [dict(kind="prelu", **s) for s in SCALES] + [
    dict(kind="prelu", alpha=2.0), dict(kind="prelu_channel", shape=(4, 4, 16)),
    dict(kind="prelu_channel", shape=(5, 3, 8), alpha=1.0, in_scale=0.5, in_offset=1.0)]


@pytest.mark.parametrize("p", PRELU, ids=[str(p) for p in PRELU])
def test_prelu(p):
    """PRELU's alpha is a (secret) model weight: exact mode bit-identical on all 256
    input values, probabilistic within 1 LSB (the alpha branch is requantized like a conv)."""
    b = modelgen.activation(**p)
    assert modelgen.op_names(b) == ["PRELU"]
    check_model(b, seeds=(0, 1), exact_bound=0, pr_bound=1, inputs_fn=_all_int8_values(b))


def test_prelu_every_owner_assignment():
    b = modelgen.activation("prelu_channel", shape=(4, 4, 16))
    for d, m in ROLES:
        check_model(b, seeds=(0,), pr=False, data_owner=d, model_owner=m, inputs_fn=_all_int8_values(b))


def _all_int8_values(b):
    shape = modelgen.input_details(b)[0]["shape"]
    x = np.resize(np.arange(-128, 128, dtype=np.int8), int(np.prod(shape))).reshape(shape)
    return lambda seed: [x if seed == 0 else np.random.default_rng(seed).permutation(x.ravel()).reshape(shape)]


@pytest.mark.parametrize("p", ACTIVATIONS, ids=[str(p) for p in ACTIVATIONS])
def test_elementwise_activation(p):
    b = modelgen.activation(**p)
    want_op = {"logistic": "LOGISTIC", "gelu_approx": "GELU", "relu_0_to_1": "RELU_0_TO_1"}.get(p["kind"], p["kind"].upper())
    assert modelgen.op_names(b) == [want_op]
    if p["kind"].startswith("gelu"):
        assert modelgen.op_details(b)[0]["options"]["approximate"] == (p["kind"] == "gelu_approx")
    check_model(b, seeds=(0, 1), exact_bound=0, pr_bound=0, inputs_fn=_all_int8_values(b))


CHAINS = ["logistic", "tanh", "hard_swish", "gelu", "gelu_approx", "leaky_relu", "prelu"]


@pytest.mark.parametrize("kind", CHAINS)
def test_dense_then_activation(kind):
    # A secret FULLY_CONNECTED output feeds the activation (exact mode: bit-identical; in
    # probabilistic mode the FC's 1-LSB rounding can be amplified by a steep activation).
    b = modelgen.activation(kind, n=64, dense=48, batch=2)
    assert modelgen.op_names(b)[0] == "FULLY_CONNECTED" and len(modelgen.op_names(b)) == 2
    check_model(b, seeds=(0, 1), pr=False)


def test_elementwise_float_io_edges():
    b = modelgen.activation("tanh", int8_io=False)
    assert modelgen.op_names(b) == ["QUANTIZE", "TANH", "DEQUANTIZE"]
    check_model(b, exact_bound=0, pr_bound=0)


FLOAT_REGION_OPS = ["ELU", "NEG", "ABS", "RELU", "RELU6", "RELU_N1_TO_1", "EXP", "SQUARE", "TANH", "LOGISTIC"]


@pytest.mark.parametrize("op", FLOAT_REGION_OPS)
def test_float_region_runs_as_one_table_on_all_256_inputs(op):
    # The converter keeps ELU (and a layer normalisation's NEG) in float: DEQUANTIZE -> ELU ->
    # QUANTIZE. The region is a function of the 8-bit input: one public table with TFLite's
    # float arithmetic. Other unary float ops: the ELU node's op code edited. The oracle is
    # TFLite's builtin kernels (BUILTIN_REF has no ELU kernel; the edited models keep ELU in
    # their op-code table).
    from crafted import Edit, OP
    from secure import cpu_nodes
    b = modelgen.activation("elu")
    assert modelgen.op_names(b) == ["DEQUANTIZE", "ELU", "QUANTIZE"]
    if op != "ELU":
        e = Edit(b)
        n = e.find(OP.ELU)
        e.ops[n].opcodeIndex = e.opcode(getattr(OP, op))
        b = e.bytes()
    x = [np.arange(-128, 128, dtype=np.int8).reshape(modelgen.input_details(b)[0]["shape"])]
    want = modelgen.run_tflite(b, x, reference=False)[0]
    for mode in ("exact", "probabilistic"):
        got, rep = run_secure(b, x, mode)
        assert np.array_equal(got[0], want), (op, mode)
    assert [l["op"] for l in rep["layers"] if l["node"] >= 0][0] == f"FLOAT_REGION({op})"
    assert cpu_nodes(b) == []


def test_quantize_to_uint8_runs():
    # int8 -> uint8 QUANTIZE inside the graph (it used to be refused): a public 256-entry table
    # of TFLite's Requantize, bit-identical; more in tests/test_uint8.py.
    from tflite_mpc import modelgen as mg
    b = mg._parse(modelgen.activation("quantize"))
    sg = b.subgraphs[0]
    out = sg.tensors[sg.operators[0].outputs[0]]
    out.type = 3  # UINT8
    out.quantization.zeroPoint = [0]
    b = mg._pack(b)
    check_model(b, seeds=(0,))


def test_logistic_with_a_wrong_output_quantization_is_refused():
    import tensorflow as tf
    import tflite_mpc
    b = modelgen.patch_op(modelgen.activation("relu"), "LOGISTIC")
    with pytest.raises(RuntimeError, match=r"node 0 \(LOGISTIC\).*scale 1/256 and zero point -128"):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])


@pytest.mark.parametrize("cout,k,act", [(4, 3, None), (8, 3, "relu"), (12, 7, None)])
def test_grouped_conv2d_with_one_input_channel_per_group(cout, k, act):
    # TF 2.21 converts Keras Conv2D(groups=in_channels) (ConvNeXt's 7x7 depthwise convs) to a
    # CONV_2D whose filter has one input channel: run as a depthwise convolution.
    from crafted import tiny
    b = tiny([modelgen.keras.layers.Conv2D(cout, k, padding="same", groups=4, activation=act)], shape=(9, 9, 4))
    assert modelgen.op_names(b) == ["CONV_2D"]
    check_model(b)


def test_grouped_conv2d_with_several_input_channels_per_group_is_refused():
    from crafted import tiny
    import tensorflow as tf
    import tflite_mpc
    b = tiny([modelgen.keras.layers.Conv2D(4, 3, padding="same", groups=2)], shape=(6, 6, 4))
    with pytest.raises(RuntimeError, match=r"CONV_2D: grouped convolution with 2 input channels per group"):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])
