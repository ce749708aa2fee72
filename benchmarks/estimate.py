"""The cost model (`tflite-mpc inspect`, delegate option estimate) against measured runs.

For each model and truncation mode: one estimate (no MPC) and one measured local-mode run
(first inference, so both include the weights' sharing); prints one JSON line with the
rounds (estimate / measured), the layers whose rounds or depth differ (any party), the largest
relative byte error over the parties, and the seconds of each (the estimate's is compute only,
as local mode would take it; the measured one is the wall time).

  python benchmarks/estimate.py                          # digits CNN, MobileNetV1 0.25_128, MobileNetV2 0.35_96
  python benchmarks/estimate.py --big                    # + MobileNetV1 1.0_224
  python benchmarks/estimate.py --stock ResNet50,DenseNet121
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tflite_mpc  # noqa: E402
from tflite_mpc import cost, modelgen  # noqa: E402


def measured(model, truncation):
    d = tflite_mpc.load_delegate(truncation=truncation)
    it = modelgen._interpreter(model, reference=False, delegates=[d])
    it.allocate_tensors()
    for det, x in zip(it.get_input_details(), modelgen.random_input(model, seed=1)):
        it.set_tensor(det["index"], x)
    it.invoke()
    return tflite_mpc.report(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", action="store_true", help="also MobileNetV1 1.0_224")
    ap.add_argument("--stock", default="", help="comma-separated stock families (modelgen.stock), smallest input")
    a = ap.parse_args()
    models = {"digits_cnn": modelgen.digits_cnn()[0],
              "mobilenet_v1_0.25_128": modelgen.mobilenet_v1(alpha=0.25, size=128),
              "mobilenet_v2_0.35_96": modelgen.mobilenet_v2(alpha=0.35, size=96)}
    if a.big:
        models["mobilenet_v1_1.0_224"] = modelgen.mobilenet_v1(alpha=1.0, size=224)
    for fam in filter(None, a.stock.split(",")):
        models[fam] = modelgen.stock(fam)
    for name, m in models.items():
        for tr in ("probabilistic", "exact"):
            t0 = time.perf_counter()
            e = cost.estimate(m, truncation=tr)
            est_wall = time.perf_counter() - t0
            r = measured(m, tr)
            diff = sum(1 for le, lr in zip(e["layers"], r["layers"]) for pe, pr in zip(le["parties"], lr["parties"])
                       if pe["rounds"] != pr["rounds"] or pe["depth"] != pr["depth"])
            err = max(abs(pe["bytes_sent"] / pr["bytes_sent"] - 1) for pe, pr in zip(e["parties"], r["parties"]))
            print(json.dumps({"model": name, "truncation": tr, "rounds": [e["parties"][0]["rounds"],
                                                                        r["parties"][0]["rounds"]],
                              "layers_with_other_rounds_or_depth": diff, "max_byte_error_pct": round(100 * err, 3),
                              "mb_busiest_party": [round(max(p["bytes_sent"] for p in x["parties"]) / 1e6, 2)
                                                   for x in (e, r)],
                              "seconds_estimated": round(e["seconds"], 3), "seconds_measured": round(r["seconds"], 3),
                              "estimate_wall_s": round(est_wall, 3)}), flush=True)


if __name__ == "__main__":
    main()
