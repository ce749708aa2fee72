"""mal3 against rep3 on the linear part of MobileNetV1 (issue 9): the secret x secret products of
every convolution, depthwise convolution and the classifier, with MobileNetV1's shapes (batch 1),
in three in-process parties, then one opening of the logits (which runs mal3's verification of
every product before it). The requantizations between layers are left out: mal3 has no
non-linear primitives yet, so each layer's input is a fresh secret of the right shape.

Prints one JSON line per (alpha, size, protocol): seconds (median), bytes sent by the busiest
party, rounds, and for mal3 the verification's own share of each.

Usage: python benchmarks/mal3_products.py [--repeat 3] [--models 0.25_128,1.0_224]
"""
import argparse
import json
import statistics
import time

import numpy as np

import tflite_mpc

# MobileNetV1: (depthwise stride, pointwise output channels at alpha 1)
BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (2, 1024), (1, 1024)]


def layers(alpha, size):
    """(kind, input shape, filter shape, stride) of every product, in order."""
    c = int(32 * alpha)
    h = size // 2
    out = [("conv", (1, size, size, 3), (c, 3, 3, 3), 2)]
    for stride, oc in BLOCKS:
        out.append(("dw", (1, h, h, c), (1, 3, 3, c), stride))
        h = -(-h // stride)
        oc = int(oc * alpha)
        out.append(("conv", (1, h, h, c), (oc, 1, 1, c), 1))
        c = oc
    out.append(("fc", (1, c), (c, 1000), 1))
    return out


def run(protocol, alpha, size, rng):
    e = tflite_mpc.Engine(protocol)
    spec = layers(alpha, size)
    xs = [e.share(rng.integers(-128, 128, s_in), 0) for _, s_in, _, _ in spec]
    ws = [e.share(rng.integers(-127, 128, s_w), 1) for _, _, s_w, _ in spec]
    e.reset_stats()
    t0 = time.perf_counter()
    out = None
    for (kind, _, _, stride), x, w in zip(spec, xs, ws):
        if kind == "conv":
            out = e.conv2d(x, w, stride=stride, padding="same")
        elif kind == "dw":
            out = e.depthwise_conv2d(x, w, stride=stride, padding="same")
        else:
            out = e.matmul(x, w)
    e.reveal(out, to=0)
    seconds = time.perf_counter() - t0
    st = e.stats()
    busiest = max(p["total"]["bytes_sent"] for p in st)
    v = st[0].get("verify", {"seconds": 0.0, "rounds": 0, "bytes_sent": 0})
    return {"seconds": seconds, "bytes_per_party": busiest, "rounds": st[0]["total"]["rounds"],
            "verify_seconds": max(p.get("verify", v)["seconds"] for p in st), "verify_rounds": v["rounds"],
            "verify_bytes": max(p.get("verify", v)["bytes_sent"] for p in st)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="0.25_128,1.0_224")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for m in args.models.split(","):
        alpha, size = float(m.split("_")[0]), int(m.split("_")[1])
        base = None
        for protocol in ("rep3", "mal3"):
            runs = [run(protocol, alpha, size, rng) for _ in range(args.repeat)]
            med = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            row = {"model": m, "protocol": protocol, "repeat": args.repeat,
                   "seconds": round(statistics.median(r["seconds"] for r in runs), 4),
                   "bytes_per_party": med["bytes_per_party"], "rounds": med["rounds"]}
            if protocol == "mal3":
                row.update(verify_seconds=round(med["verify_seconds"], 4), verify_rounds=med["verify_rounds"],
                           verify_bytes=med["verify_bytes"],
                           time_over_rep3=round(row["seconds"] / base["seconds"], 2),
                           bytes_over_rep3=round(row["bytes_per_party"] / base["bytes_per_party"], 3))
            else:
                base = row
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
