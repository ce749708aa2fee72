"""Conformance: single-op int8 models from the TF converter, run under the
delegate vs the BUILTIN_REF interpreter. truncation=exact must be bit-identical
(SOFTMAX: within 1 LSB), truncation=probabilistic within 1 LSB."""
import pytest

import modelgen
from secure import check_model

CONV = [
    dict(k=3), dict(k=1), dict(k=3, stride=2), dict(k=3, padding="valid"), dict(k=3, stride=2, padding="valid"),
    dict(k=3, dilation=2), dict(k=5, padding="valid", dilation=2, h=12, w=11), dict(k=2, stride=2),
    dict(k=3, activation="relu"), dict(k=3, activation="relu6"), dict(k=3, use_bias=False),
    dict(k=3, per_tensor=True), dict(k=1, per_tensor=True, activation="relu6"),
    dict(k=3, cin=8, cout=16, h=7, w=9, stride=2), dict(k=3, batch=2),
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
        dict(pool=3, stride=2, padding="valid", h=9, w=7), dict(pool=2, stride=1)]


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
