"""Stock models end to end: MobileNetV1 (0.25, 128) and MobileNetV2 (0.35, 128)
with random weights, and a small CNN trained here on scikit-learn's digits."""
import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import modelgen
from secure import run_secure


@pytest.mark.parametrize("builder,alpha", [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35)])
def test_mobilenet_exact_and_probabilistic(builder, alpha):
    # Logits (no final softmax): with random weights a 1000-way softmax is almost all -128.
    b = getattr(modelgen, builder)(alpha, 128, classifier_activation=None)
    x = modelgen.random_input(b, seed=1)
    want = modelgen.run_tflite(b, x, reference=True)[0]
    got, rep = run_secure(b, x, "exact")
    assert np.array_equal(got[0], want), "exact mode must be bit-identical to BUILTIN_REF"
    ops = {l["op"] for l in rep["layers"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN"} <= ops
    got_pr, _ = run_secure(b, x, "probabilistic")
    g, w = got_pr[0].astype(np.float64).ravel(), want.astype(np.float64).ravel()
    # Probabilistic mode is within 1 LSB per op (rounding to nearest in one step); through
    # ~30 random-weight layers the error compounds (measured, seeds 1-3: correlation
    # 0.993-0.995 for V1, 0.990 for V2; mean drift 0.08-0.11 std).
    assert np.corrcoef(g, w)[0, 1] > 0.98, np.corrcoef(g, w)[0, 1]
    assert np.mean(np.abs(g - w)) < 0.2 * np.std(w), (np.mean(np.abs(g - w)), np.std(w))


def test_mobilenet_v1_with_softmax_exact():
    b = modelgen.mobilenet_v1(0.25, 128)
    assert modelgen.op_names(b)[-1] == "SOFTMAX"
    x = modelgen.random_input(b, seed=2)
    got, _ = run_secure(b, x, "exact")
    assert np.array_equal(got[0], modelgen.run_tflite(b, x, reference=True)[0])


def _classify_all(b, xs, truncation):
    d = tflite_mpc.load_delegate(truncation=truncation)
    Interpreter, _, _ = modelgen._interp_api()
    it = Interpreter(model_content=b, experimental_delegates=[d])
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for x in xs:
        it.set_tensor(i, x[None])
        it.invoke()
        out.append(int(np.argmax(it.get_tensor(o))))
    return np.array(out)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_digits_cnn_secure_top1_equals_plaintext(pool, capsys):
    """A CNN trained here on scikit-learn's digits: under exact truncation the secure
    top-1 equals plaintext TFLite's on the whole test split; probabilistic truncation
    stays within one point of accuracy."""
    b, xs, ys, float_acc = modelgen.digits_cnn(pool=pool)
    plain = np.array(modelgen.classify(b, xs))
    exact = _classify_all(b, xs, "exact")
    prob = _classify_all(b, xs, "probabilistic")
    n = len(ys)
    acc = lambda p: float(np.mean(p == ys))  # noqa: E731
    with capsys.disabled():
        print(f"\n[digits/{pool}] test split n={n}: plaintext TFLite top-1 {acc(plain):.4f} (float {float_acc:.4f}); "
              f"secure exact {acc(exact):.4f} (agrees {int(np.sum(exact == plain))}/{n}); "
              f"secure probabilistic {acc(prob):.4f} (agrees {int(np.sum(prob == plain))}/{n})")
    assert np.array_equal(exact, plain)
    assert acc(plain) > 0.9
    assert abs(acc(prob) - acc(plain)) <= 0.01
