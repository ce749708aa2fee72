"""Helpers to run a model under the delegate and compare with the oracle."""
import numpy as np

from tflite_mpc import modelgen
import tflite_mpc


def run_secure(model_bytes, inputs, truncation="exact", **opts):
    d = tflite_mpc.load_delegate(truncation=truncation, **opts)
    outs = modelgen.run_tflite(model_bytes, inputs, reference=False, delegates=[d])
    return outs, tflite_mpc.report(d)


def graph_hash(model_bytes, **opts):
    """The public-graph hash the delegate computes for a model (report()["graph_hash"])."""
    import tensorflow as tf
    d = tflite_mpc.load_delegate(truncation="exact", **opts)
    interp = tf.lite.Interpreter(model_content=model_bytes, experimental_delegates=[d])
    h = tflite_mpc.report(d)["graph_hash"]
    del interp
    return h


def check_model(model_bytes, seeds=(0, 1, 2), exact_bound=0, pr_bound=1, inputs_fn=None, pr=True, **opts):
    """Secure output vs the BUILTIN_REF interpreter: exact mode within `exact_bound`
    LSB (0 = bit-identical), probabilistic mode (unless pr=False) within `pr_bound` LSB.
    `opts`: further delegate options (data_owner, model_owner, output_to, ...)."""
    for seed in seeds:
        inputs = inputs_fn(seed) if inputs_fn else modelgen.random_input(model_bytes, seed=seed)
        want = modelgen.run_tflite(model_bytes, inputs, reference=True)
        for mode, bound in (("exact", exact_bound), ("probabilistic", pr_bound))[:2 if pr else 1]:
            got, rep = run_secure(model_bytes, inputs, mode, **opts)
            assert rep is not None and rep["layers"], "the delegate did not run"
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                if np.issubdtype(w.dtype, np.floating):
                    deq = [o for o in modelgen.op_details(model_bytes) if o["op"] == "DEQUANTIZE"]
                    scale = float(deq[-1]["inputs"][0]["scales"][0])
                    diff = np.max(np.abs(g - w)) / scale if g.size else 0
                    assert diff <= bound + 1e-3, (mode, seed, diff)
                else:
                    diff = np.max(np.abs(g.astype(np.int64) - w.astype(np.int64))) if g.size else 0
                    assert diff <= bound, (mode, seed, diff)


def cpu_nodes(model_bytes, **opts):
    """Nodes that ran on TFLite's CPU kernels under the delegate (BUILTIN_WITHOUT_DEFAULT_DELEGATES):
    a node other than SHAPE and integer shape arithmetic whose output feeds a DELEGATE node or is a graph output, and that no
    DELEGATE node produces (the replaced nodes stay listed beside their DELEGATE node)."""
    d = tflite_mpc.load_delegate(truncation="exact", **opts)
    it = modelgen._interpreter(model_bytes, reference=False, delegates=[d])
    it.allocate_tensors()
    ops = it._get_ops_details()
    dele = [o for o in ops if o["op_name"] == "DELEGATE"]
    d_in = {int(t) for o in dele for t in o["inputs"]}
    d_out = {int(t) for o in dele for t in o["outputs"]}
    g_out = {int(o["index"]) for o in it.get_output_details()}
    dtype = {int(t["index"]): t["dtype"] for t in it.get_tensor_details()}

    def shape_arithmetic(o):  # SHAPE, or int32/int64 arithmetic on such values (public)
        return all(dtype[int(t)] in (np.int32, np.int64) for t in list(o["inputs"]) + list(o["outputs"]) if t >= 0)
    ran = []
    for o in ops:
        if o["op_name"] in ("DELEGATE", "SHAPE") or shape_arithmetic(o):
            continue
        outs = {int(t) for t in o["outputs"]}
        if outs & (d_in | g_out) and not outs <= d_out:
            ran.append(o["op_name"])
    assert dele, "the delegate claimed nothing"
    return ran
