"""Issue 10, batches: a batch-4 input runs in the same number of MPC rounds as batch 1 and is
bit-identical to TFLite's BUILTIN_REF interpreter in exact mode (within 1 LSB in probabilistic
mode; SOFTMAX exact in both).

Each case builds the same single-op model (same builder arguments and seed, so the same
weights) at batch 1 and at batch 4. The batch-4 model's quantization comes from its own
calibration data, so scales may differ slightly from the batch-1 model's; the round count is a
function of the graph's structure, not of the scales, and is compared per layer and in total
(report()["parties"][0]["rounds"], the last invoke: weight sharing plus the layers)."""
import numpy as np
import pytest

from tflite_mpc import modelgen
from secure import run_secure

B = 4

# (id, builder, kwargs without batch, max LSB difference in probabilistic mode)
CASES = [
    ("conv2d", modelgen.conv2d, dict(k=3, activation="relu"), 1),
    ("conv2d_stride2_valid", modelgen.conv2d, dict(k=3, stride=2, padding="valid", cin=8, cout=8), 1),
    ("depthwise_conv2d", modelgen.depthwise_conv2d, dict(k=3, depth_multiplier=2, activation="relu6"), 1),
    ("fully_connected", modelgen.fully_connected, dict(activation="relu"), 1),
    ("fully_connected_seq", modelgen.fully_connected, dict(seq=3), 1),
    ("average_pool2d", modelgen.average_pool2d, dict(pool=3, stride=2, padding="same"), 1),
    ("max_pool2d", modelgen.max_pool2d, dict(pool=2), 1),
    ("add", modelgen.add, dict(scale_a=0.1, scale_b=8.0, activation="relu"), 1),
    ("mean", modelgen.mean, dict(), 1),
    ("mean_keepdims", modelgen.mean, dict(h=7, w=7, c=16, keepdims=True), 1),
    ("softmax", modelgen.softmax, dict(n=10), 0),
    ("reshape", modelgen.reshape, dict(), 0),
    ("flatten", modelgen.flatten, dict(), 0),
    ("concatenation", modelgen.movement, dict(kind="concat", params={"axis": -1}), 1),
]


def _softmax_inputs(b, seed):
    """Random int8 input whose rows TFLite's reference SOFTMAX accepts (a row sum of
    exps >= 2^28 aborts the process in the oracle; see test_delegate_ops.test_softmax)."""
    import int8_ref
    det = modelgen.input_details(b)[0]
    scale = det["quantization"][0]
    beta = modelgen.op_details(b)[0]["options"].get("beta", 1.0)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        x = rng.integers(-128, 128, size=det["shape"], dtype=np.int8)
        q = x.astype(np.int64)
        e = np.asarray(int8_ref.softmax_exp_table(int8_ref.softmax_params(scale, beta)))[q.max(-1, keepdims=True) - q]
        if not np.any(int8_ref.softmax_would_abort(int8_ref.softmax_sum(e))):
            return [x]
    pytest.skip("no input the reference kernel accepts")


def _inputs(name, b, seed):
    return _softmax_inputs(b, seed) if name == "softmax" else modelgen.random_input(b, seed=seed)


def _layer_rounds(rep):
    return [(l["op"], l["parties"][0]["rounds"]) for l in rep["layers"]]


@pytest.mark.parametrize("name,builder,kw,pr_bound", CASES, ids=[c[0] for c in CASES])
def test_batch4_exact_and_same_rounds_as_batch1(name, builder, kw, pr_bound):
    b1 = builder(batch=1, **kw)
    b4 = builder(batch=B, **kw)
    assert modelgen.op_names(b1) == modelgen.op_names(b4)
    in1, in4 = modelgen.input_details(b1), modelgen.input_details(b4)
    assert [d["shape"][0] for d in in1] == [1] * len(in1) and [d["shape"][0] for d in in4] == [B] * len(in4)
    x1, x4 = _inputs(name, b1, 0), _inputs(name, b4, 0)
    want = modelgen.run_tflite(b4, x4, reference=True)
    for mode, bound in (("exact", 0), ("probabilistic", pr_bound)):
        got, rep4 = run_secure(b4, x4, mode)
        assert rep4 is not None and rep4["layers"], "the delegate did not run"
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.shape[0] == B and g.dtype == w.dtype
            diff = int(np.max(np.abs(g.astype(np.int64) - w.astype(np.int64))))
            assert diff <= bound, (mode, diff)
        _, rep1 = run_secure(b1, x1, mode)
        assert _layer_rounds(rep4) == _layer_rounds(rep1), mode
        assert rep4["parties"][0]["rounds"] == rep1["parties"][0]["rounds"], mode
        # every party counts the same rounds
        assert len({p["rounds"] for p in rep4["parties"]}) == 1


def test_mobilenet_v1_batch_keeps_the_batch1_cache_key(monkeypatch):
    # `batch` was added to mobilenet_v1 later: at its default it stays out of the cache key,
    # so the MobileNet models cached before keep their keys.
    seen = []
    monkeypatch.setattr(modelgen, "_cached", lambda name, params, make, suffix=".tflite": seen.append(params))
    modelgen.mobilenet_v1(0.25, 128)
    modelgen.mobilenet_v1(0.25, 128, batch=1)
    modelgen.mobilenet_v1(0.25, 128, batch=8)
    assert "batch" not in seen[0] and seen[0] == seen[1]
    assert seen[2] == dict(seen[0], batch=8)
    assert modelgen._cache_key("mobilenet_v1", seen[0]) != modelgen._cache_key("mobilenet_v1", seen[2])


@pytest.mark.slow
def test_mobilenet_v1_batch3_exact_rows_and_rounds():
    # MobileNetV1 0.25/128 (logits): batch 3 is bit-identical to BUILTIN_REF in exact mode,
    # each row equals the batch-1 model's secure output for that image (same weights and
    # quantization, except the classifier's output scale: 1 ulp apart from calibration float
    # rounding, without effect here), and both truncation modes run in the batch-1 rounds.
    b1 = modelgen.mobilenet_v1(0.25, 128, classifier_activation=None)
    b3 = modelgen.mobilenet_v1(0.25, 128, classifier_activation=None, batch=3)
    x3 = modelgen.random_input(b3, seed=3)
    want = modelgen.run_tflite(b3, x3, reference=True)[0]
    got, rep3 = run_secure(b3, x3, "exact")
    assert got[0].shape == want.shape == (3, 1000) and np.array_equal(got[0], want)
    for i in range(3):
        row, rep1 = run_secure(b1, [x3[0][i:i + 1]], "exact")
        assert np.array_equal(row[0][0], got[0][i]), i
    assert _layer_rounds(rep3) == _layer_rounds(rep1)
    got_pr, rep3 = run_secure(b3, x3, "probabilistic")
    _, rep1 = run_secure(b1, [x3[0][:1]], "probabilistic")
    assert _layer_rounds(rep3) == _layer_rounds(rep1)
    assert rep3["parties"][0]["rounds"] == rep1["parties"][0]["rounds"]
