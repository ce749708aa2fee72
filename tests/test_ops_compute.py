"""Conformance of RESIZE_BILINEAR, TRANSPOSE_CONV and ARG_MAX / ARG_MIN (single-op int8
models from the TF converter) under the delegate vs the BUILTIN_REF interpreter:
truncation=exact bit-identical, probabilistic within 1 LSB (arg max: exact in both, it
has no rounding). Plus the delegate option output=argmax, and a check that no node of
these models ran on TFLite's CPU kernels."""
import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import modelgen
from secure import check_model, cpu_nodes, run_secure


# ------------------------------------------------------------------ RESIZE_BILINEAR
RESIZE = [
    dict(), dict(out_h=3, out_w=2), dict(out_h=7, out_w=13), dict(h=5, w=3, out_h=5, out_w=3),
    dict(align_corners=True), dict(align_corners=True, out_h=3, out_w=6), dict(align_corners=True, out_h=1, out_w=1),
    dict(half_pixel_centers=True), dict(half_pixel_centers=True, out_h=2, out_w=3),
    dict(half_pixel_centers=True, h=3, w=5, out_h=11, out_w=7), dict(batch=2, c=5, out_h=6, out_w=9),
    dict(batch=2, c=1, half_pixel_centers=True, out_h=9, out_w=9),
]


@pytest.mark.parametrize("p", RESIZE, ids=[str(p) for p in RESIZE])
def test_resize_bilinear(p):
    check_model(modelgen.resize_bilinear(**p))


def test_resize_bilinear_upsampling2d_keras():
    """Keras UpSampling2D(interpolation='bilinear') (half_pixel_centers) through the stock converter."""
    import keras
    from keras import layers as L

    modelgen._seed(0)
    m = modelgen._model([(4, 5, 3)], lambda x: L.UpSampling2D((2, 3), interpolation="bilinear")(x), 1)
    model = modelgen.convert_int8(m, modelgen._rand_data([(1, 4, 5, 3)], 8, 0))
    assert "RESIZE_BILINEAR" in modelgen.op_names(model)
    check_model(model)


# ------------------------------------------------------------------ TRANSPOSE_CONV
TCONV = [
    dict(k=2, stride=2), dict(k=3, stride=2), dict(k=4, stride=2), dict(k=3, stride=1), dict(k=2, stride=1),
    dict(k=3, stride=2, padding="valid"), dict(k=4, stride=1, padding="valid"), dict(k=2, stride=2, padding="valid"),
    dict(k=3, stride=2, use_bias=False), dict(k=3, stride=1, padding="valid", use_bias=False),
    dict(k=3, stride=2, per_tensor=True), dict(k=3, stride=2, batch=2), dict(k=3, stride=2, cin=5, cout=2, h=3, w=5),
    dict(k=3, stride=3, h=3, w=2), dict(k=3, stride=2, activation="relu"), dict(k=4, stride=2, activation="relu6"),
]


@pytest.mark.parametrize("p", TCONV, ids=[str(p) for p in TCONV])
def test_transpose_conv(p):
    model = modelgen.transpose_conv(**p)
    assert "TRANSPOSE_CONV" in modelgen.op_names(model)
    check_model(model)


BIG = [
    ("resize", dict(h=17, w=23, c=16, out_h=64, out_w=48, batch=2)),
    ("resize", dict(h=32, w=32, c=8, out_h=7, out_w=9, align_corners=True)),
    ("tconv", dict(h=16, w=16, cin=16, cout=32, k=4, stride=2, batch=2)),
    ("tconv", dict(h=9, w=7, cin=24, cout=8, k=5, stride=3, padding="valid")),
]


@pytest.mark.slow
@pytest.mark.parametrize("op, p", BIG, ids=[f"{o}-{p}" for o, p in BIG])
def test_larger_layers(op, p):
    check_model({"resize": modelgen.resize_bilinear, "tconv": modelgen.transpose_conv}[op](**p))


# ------------------------------------------------------------------ ARG_MAX / ARG_MIN
ARG = [
    dict(), dict(output_type="int32"), dict(kind="min"), dict(kind="min", output_type="int32"),
    dict(shape=(7,), batch=3), dict(shape=(1,)), dict(shape=(3, 4, 5), axis=1), dict(shape=(3, 4, 5), axis=2),
    dict(shape=(3, 4, 5), axis=3, kind="min"), dict(shape=(3, 4), axis=0, batch=5), dict(shape=(33,), axis=-1),
]


@pytest.mark.parametrize("p", ARG, ids=[str(p) for p in ARG])
def test_arg_min_max(p):
    model = modelgen.arg_max(**p)
    assert modelgen.op_names(model) == ["ARG_MAX" if p.get("kind", "max") == "max" else "ARG_MIN"]
    check_model(model, pr_bound=0)


@pytest.mark.parametrize("kind", ["max", "min"])
def test_arg_min_max_ties_resolve_to_the_lowest_index(kind):
    """Inputs with many equal values (few levels, repeated extremes): TFLite returns the first."""
    model = modelgen.arg_max(shape=(4, 9), axis=2, kind=kind)
    shape = modelgen.input_details(model)[0]["shape"]

    def tied(seed):
        rng = np.random.default_rng(seed)
        x = rng.integers(-2, 2, size=shape).astype(np.int8)
        x[..., 0, :] = 1  # a whole row of ties
        x[..., 1, 3] = x[..., 1, 7] = 127
        x[..., 2, 2] = x[..., 2, 5] = -128
        return [x]

    check_model(model, pr_bound=0, inputs_fn=tied, seeds=(0, 1, 2, 3))


def _to_uint8(model_bytes, tensors):
    """The model with these int8 tensors retyped as uint8 (zero point + 128): the legacy
    asymmetric scheme, same real values."""
    from crafted import Edit, T
    e = Edit(model_bytes)
    for t in tensors:
        ten = e.sg.tensors[t]
        ten.type = T.UINT8
        ten.quantization.zeroPoint = np.asarray(ten.quantization.zeroPoint, np.int64) + 128
    return e.bytes()


@pytest.mark.parametrize("kind", ["max", "min"])
def test_arg_min_max_uint8(kind):
    model = modelgen.arg_max(shape=(3, 6), axis=2, kind=kind)
    u8 = _to_uint8(model, [modelgen.input_details(model)[0]["index"]])
    assert modelgen.input_details(u8)[0]["dtype"] == np.uint8
    check_model(u8, pr_bound=0)


def _refused(model_bytes, op, why):
    import tensorflow as tf
    with pytest.raises(RuntimeError, match=rf"\({op}\).*{why}.*refused"):
        tf.lite.Interpreter(model_content=model_bytes,
                            experimental_delegates=[tflite_mpc.load_delegate(truncation="exact")])


def test_unsupported_variants_are_refused_with_the_reason():
    from crafted import Edit
    # uint8 RESIZE_BILINEAR: TFLite's reference interpolates uint8 in float
    m = modelgen.resize_bilinear()
    _refused(_to_uint8(m, [modelgen.input_details(m)[0]["index"], modelgen.output_details(m)[0]["index"]]),
             "RESIZE_BILINEAR", "uint8 is not supported")
    # align_corners together with half_pixel_centers
    e = Edit(m)
    e.ops[0].builtinOptions.alignCorners = True
    e.ops[0].builtinOptions.halfPixelCenters = True
    _refused(e.bytes(), "RESIZE_BILINEAR", "cannot both be set")
    # a fused TANH on TRANSPOSE_CONV
    e = Edit(modelgen.transpose_conv(activation="relu"))
    e.ops[0].builtinOptions.fusedActivationFunction = 4
    _refused(e.bytes(), "TRANSPOSE_CONV", "TANH")
    # uint8 TRANSPOSE_CONV
    m = modelgen.transpose_conv()
    _refused(_to_uint8(m, [modelgen.input_details(m)[0]["index"], modelgen.output_details(m)[0]["index"]]),
             "TRANSPOSE_CONV", "uint8 is not supported")


def _dynamic_batch(layer):
    """A Keras layer on an input without a batch size: TRANSPOSE_CONV's output_shape is then
    computed at run time (SHAPE -> STRIDED_SLICE -> PACK) and its output is a dynamic tensor."""
    modelgen._seed(0)
    m = modelgen._model([(4, 4, 3)], lambda x: layer()(x), None)
    return modelgen.convert_int8(m, modelgen._rand_data([(1, 4, 4, 3)], 8, 0))


def test_transpose_conv_with_a_dynamic_batch():
    model = _dynamic_batch(lambda: modelgen.L.Conv2DTranspose(4, 3, strides=2, padding="same"))
    assert modelgen.op_names(model) == ["SHAPE", "STRIDED_SLICE", "PACK", "TRANSPOSE_CONV"]
    check_model(model)
    assert cpu_nodes(model) == []


@pytest.mark.parametrize("model", ["resize", "tconv", "argmax"])
def test_nothing_runs_on_the_cpu(model):
    m = {"resize": lambda: modelgen.resize_bilinear(half_pixel_centers=True),
         "tconv": lambda: modelgen.transpose_conv(),
         "argmax": lambda: modelgen.arg_max(shape=(3, 4), axis=1)}[model]()
    assert cpu_nodes(m) == []


# ------------------------------------------------------------------ option output=argmax
def _argmax_case(model, seed):
    inputs = modelgen.random_input(model, seed=seed)
    want = modelgen.run_tflite(model, inputs, reference=True)[0]
    return inputs, np.argmax(want.reshape(want.shape[0], -1), axis=1)  # np.argmax: first maximum


@pytest.mark.parametrize("truncation", ["exact", "probabilistic"])
def test_output_argmax_reveals_only_the_index(truncation):
    model = modelgen.softmax(n=10, batch=3)  # [3, 10] int8 probabilities, ties likely
    for seed in range(3):
        inputs, want = _argmax_case(model, seed)
        d = tflite_mpc.load_delegate(truncation=truncation, output="argmax")
        out = modelgen.run_tflite(model, inputs, reference=False, delegates=[d])[0]
        got = tflite_mpc.argmax(d)
        if truncation == "exact":
            assert got == list(want)
        else:  # probabilistic softmax moves values by 1 LSB: the argmax of a value within 1 LSB
            ref = modelgen.run_tflite(model, inputs, reference=True)[0].astype(int)
            assert all(ref[r, k] >= ref[r].max() - 1 for r, k in enumerate(got))
        # the output tensor is a one-hot: nothing of the values
        onehot = np.full(out.shape, -128, np.int8)
        onehot[np.arange(len(got)), got] = 127
        np.testing.assert_array_equal(out, onehot)


def test_output_argmax_exact_matches_reference_on_fully_connected_and_float_output():
    for model in (modelgen.fully_connected(batch=2, in_features=16, out_features=10),
                  modelgen.fully_connected(batch=2, in_features=16, out_features=10, int8_io=False)):
        for seed in range(2):
            inputs, want = _argmax_case(model, seed)
            d = tflite_mpc.load_delegate(truncation="exact", output="argmax")
            out = modelgen.run_tflite(model, inputs, reference=False, delegates=[d])[0]
            assert tflite_mpc.argmax(d) == list(want)
            np.testing.assert_array_equal(np.argmax(out, axis=1), want)
            assert set(np.unique(out).tolist()) <= ({0.0, 1.0} if out.dtype == np.float32 else {-128, 127})


@pytest.mark.parametrize("int8_io", [True, False])
def test_output_argmax_opens_one_index_per_row_to_the_recipients_only(int8_io):
    """What the opening sends (report()["reveal"], per party): with output=argmax the
    recipients receive one ring element per row (the index) and nothing else; a party that
    is not a recipient receives nothing. Without it, every value of the output."""
    rows, classes = 2, 10
    model = modelgen.fully_connected(batch=rows, in_features=16, out_features=classes, int8_io=int8_io)
    inputs, want = _argmax_case(model, 0)
    for to in (0, 2, [0, 2], [0, 1, 2]):
        for output, per_row in (("values", classes), ("argmax", 1)):
            d = tflite_mpc.load_delegate(truncation="exact", output=output, output_to=to)
            out = modelgen.run_tflite(model, inputs, reference=False, delegates=[d])[0]
            recv = [c["bytes_recv"] for c in tflite_mpc.report(d)["reveal"]]
            recipients = [to] if isinstance(to, int) else to
            assert recv == [8 * rows * per_row if i in recipients else 0 for i in range(3)], (to, output, recv)
            if output == "argmax":
                assert tflite_mpc.argmax(d) == list(want)
                np.testing.assert_array_equal(np.argmax(out, axis=1), want)


def test_output_argmax_option_is_validated():
    with pytest.raises(ValueError, match="output"):
        tflite_mpc.load_delegate(output="argmin")
    tflite_mpc.validate_options({"output": "values"})


def test_output_argmax_in_the_party_configuration(tmp_path):
    """Distributed mode: `output` comes from the configuration every party shares (and is part of
    the handshake); the delegate option is then refused like the roles."""
    import json
    cfg = {"protocol": "rep3", "truncation": "exact", "transport": "tcp-insecure",
           "parties": [{"id": i, "host": "127.0.0.1", "port": 7000 + i} for i in range(3)]}
    path = tmp_path / "parties.json"
    for value, ok in (("argmax", True), ("values", True), ("argmin", False), (1, False)):
        path.write_text(json.dumps(dict(cfg, output=value)))
        if ok:
            tflite_mpc.validate_options({"parties": str(path), "party": 0})
        else:
            with pytest.raises(ValueError, match="'output' must be"):
                tflite_mpc.validate_options({"parties": str(path), "party": 0})
    path.write_text(json.dumps(dict(cfg, output="argmax")))
    with pytest.raises(ValueError, match="option 'output' comes from the party configuration"):
        tflite_mpc.validate_options({"parties": str(path), "party": 0, "output": "argmax"})


def test_output_argmax_refuses_other_output_shapes():
    model = modelgen.resize_bilinear()  # a 4-D output
    d = tflite_mpc.load_delegate(truncation="exact", output="argmax")
    with pytest.raises((RuntimeError, ValueError), match="output=argmax"):
        modelgen.run_tflite(model, modelgen.random_input(model), reference=False, delegates=[d])


def test_segmentation_head_end_to_end():
    """A decoder as in semantic segmentation: CONV_2D -> TRANSPOSE_CONV (stride 2) -> RESIZE_BILINEAR
    (x2, half-pixel) -> per-pixel ARG_MAX over the classes: exact mode bit-identical, the indices
    only revealed."""
    import tensorflow as tf
    L = modelgen.L
    modelgen._seed(3)

    def f(x):
        y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
        y = L.Conv2DTranspose(5, 3, strides=2, padding="same")(y)
        y = L.UpSampling2D(2, interpolation="bilinear")(y)
        return L.Lambda(lambda t: tf.math.argmax(t, axis=-1, output_type=tf.int32))(y)
    m = modelgen._model([(4, 4, 3)], f, 1)
    model = modelgen.convert_int8(m, modelgen._rand_data([(1, 4, 4, 3)], 8, 3))
    assert modelgen.op_names(model) == ["CONV_2D", "TRANSPOSE_CONV", "RESIZE_BILINEAR", "ARG_MAX"]
    check_model(model, pr=False)
    got, rep = run_secure(model, modelgen.random_input(model, seed=0))
    assert got[0].shape == (1, 16, 16) and got[0].dtype == np.int32
    assert [c["bytes_recv"] for c in rep["reveal"]] == [8 * 16 * 16, 0, 0]
