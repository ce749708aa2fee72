"""Stock CNN families under the delegate (three in-process rep3 parties, local mode):
each Keras application at its smallest input size, random He-normal weights, int8,
logits head (modelgen.stock). Prints one JSON line per family and truncation mode:
median seconds of `--repeat` inferences after a warm-up, rounds, MB sent per party (the
most any party sends), the op counts, plaintext BUILTIN_REF and default-kernel
milliseconds, whether exact mode equals BUILTIN_REF, and the correlation of the logits
with BUILTIN_REF's (and, for comparison, that of TFLite's own XNNPACK path).

Usage: python benchmarks/stock.py [--families ResNet50,DenseNet121] [--repeat 3]
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tflite_mpc  # noqa: E402
from tflite_mpc import modelgen  # noqa: E402

FAMILIES = ["MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Small+pre", "MobileNetV3Large",
            "EfficientNetB0", "EfficientNetV2B0", "ResNet50", "ResNet50V2", "DenseNet121", "InceptionV3",
            "Xception", "NASNetMobile", "VGG16"]


def plain_ms(b, x, reference, repeat):
    it = modelgen._interpreter(b, reference=reference)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x[0])
    it.invoke()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t)
    return round(statistics.median(ts) * 1e3, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for fam in args.families.split(","):
        name, _, pre = fam.partition("+")
        b = modelgen.stock(name, **({"include_preprocessing": True} if pre else {}))
        x = modelgen.random_input(b, seed=1)
        want = modelgen.run_tflite(b, x, reference=True)[0]
        ops = dict(modelgen.op_counts(b))
        xnn = modelgen.run_tflite(b, x, reference=None)[0]  # TFLite's default path (XNNPACK)
        xnn_corr = round(float(np.corrcoef(xnn.ravel().astype(float), want.ravel().astype(float))[0, 1]), 3)
        for mode in ("probabilistic", "exact"):
            d = tflite_mpc.load_delegate(truncation=mode)
            it = modelgen._interpreter(b, reference=False, delegates=[d])
            it.allocate_tensors()
            inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
            times = []
            for r in range(args.repeat + 1):  # the first run shares the weights and warms the pool
                it.set_tensor(inp, x[0])
                t = time.perf_counter()
                it.invoke()
                if r:
                    times.append(time.perf_counter() - t)
            rep = tflite_mpc.report(d)
            got = it.get_tensor(outp)
            print(json.dumps({
                "family": fam, "size": int(x[0].shape[1]), "truncation": mode,
                "seconds": round(statistics.median(times), 3),
                "rounds": rep["parties"][0]["rounds"],
                "mb_per_party": round(max(p["bytes_sent"] for p in rep["parties"]) / 1e6, 1),
                "nodes": sum(ops.values()), "ops": ops,
                "plain_ref_ms": plain_ms(b, x, True, args.repeat),
                "plain_ms": plain_ms(b, x, False, args.repeat),
                "equals_reference": bool(np.array_equal(got, want)),
                "max_lsb_diff": int(np.max(np.abs(got.astype(np.int64) - want.astype(np.int64)))),
                "corr_with_reference": round(float(np.corrcoef(got.ravel().astype(float),
                                                               want.ravel().astype(float))[0, 1]), 3),
                "xnnpack_corr_with_reference": xnn_corr,
            }), flush=True)
            del it, d


if __name__ == "__main__":
    main()
