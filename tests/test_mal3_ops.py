"""Conformance under mal3 (issue 9): the single-op grids of test_delegate_ops.py, the same
oracle (BUILTIN_REF) and bounds, run under the actively secure protocol: exact bit-identical,
probabilistic within 1 LSB (mal3 rounds to nearest there). Every case of those grids, one input
each (about 45 s in all)."""
import numpy as np
import pytest

from tflite_mpc import modelgen
from secure import check_model
import test_delegate_ops as grids

CASES = [("conv2d", p) for p in grids.CONV] + [("depthwise_conv2d", p) for p in grids.DW] + \
        [("fully_connected", p) for p in grids.FC] + [("average_pool2d", p) for p in grids.POOL] + \
        [("max_pool2d", p) for p in grids.POOL] + [("add", p) for p in grids.ADD] + \
        [("mean", p) for p in grids.MEAN]


def _params():
    for op, p in CASES:
        yield pytest.param(op, p, id=f"{op}-{p}")


@pytest.mark.parametrize("op, p", list(_params()))
def test_op_under_mal3(op, p):
    check_model(getattr(modelgen, op)(**p), seeds=(0,), protocol="mal3")


def test_reshape_and_softmax_under_mal3():
    check_model(modelgen.reshape(), seeds=(0,), protocol="mal3")
    check_model(modelgen.softmax(n=10), seeds=(0,), exact_bound=1, pr_bound=1, protocol="mal3")


@pytest.mark.parametrize("roles", [(1, 2), (2, 0), (0, 0), (2, 2)], ids=lambda r: f"data{r[0]}-model{r[1]}")
def test_every_owner_assignment_under_mal3(roles):
    """Exact mode stays bit-identical whoever owns the input and the weights (the parties' roles
    in the proofs rotate with them)."""
    check_model(modelgen.conv2d(k=3, activation="relu6"), seeds=(0,), pr=False, protocol="mal3",
                data_owner=roles[0], model_owner=roles[1])


@pytest.mark.parametrize("builder,alpha", [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35)])
def test_mobilenet_under_mal3(builder, alpha):
    """The shared MobileNet conformance (tests/test_models.py) under mal3: exact mode
    bit-identical to BUILTIN_REF, probabilistic mode (round to nearest per op) close. Both in
    the default run (V1 about 9 s here, V2 about 21 s)."""
    from secure import run_secure
    from tflite_mpc import modelgen
    b = getattr(modelgen, builder)(alpha, 128, classifier_activation=None)
    x = modelgen.random_input(b, seed=1)
    want = modelgen.run_tflite(b, x, reference=True)[0]
    got, rep = run_secure(b, x, "exact", protocol="mal3")
    assert rep["protocol"] == "mal3"
    assert np.array_equal(got[0], want), "exact mode must be bit-identical to BUILTIN_REF"
    got_pr, _ = run_secure(b, x, "probabilistic", protocol="mal3")
    g, w = got_pr[0].astype(np.float64).ravel(), want.astype(np.float64).ravel()
    assert np.corrcoef(g, w)[0, 1] > 0.95, np.corrcoef(g, w)[0, 1]
    assert np.mean(np.abs(g - w)) < 0.3 * np.std(w), (np.mean(np.abs(g - w)), np.std(w))
