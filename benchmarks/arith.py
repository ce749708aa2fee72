"""Cost per element of the broadcasting binary ops (MUL, MAXIMUM, ...) under the delegate:
three in-process rep3 parties, two secret int8 graph inputs of shape [1, n] (no broadcast).

Prints one JSON line per op and truncation mode: seconds for the op's node (wall clock,
slowest party), CPU seconds of the whole invoke summed over the three party threads, bytes
sent per element (the most any party sends), rounds, and whether the output equals BUILTIN_REF.

Usage: python benchmarks/arith.py [--n 1000000] [--repeat 3] [--ops mul,maximum]
"""
import argparse
import json

import numpy as np

from tflite_mpc import modelgen
from _node_cost import node_cost

OPS = ["mul", "maximum", "add", "squared_difference"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ops", default=",".join(OPS))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = {k: rng.integers(-128, 128, size=(1, args.n)).astype(np.int8) for k in "ab"}
    for op in args.ops.split(","):
        b = modelgen.binary(op, shape=(args.n,), n_calib=2)
        want = modelgen.run_tflite(b, dict(xs), reference=True)[0]
        for mode in ("probabilistic", "exact"):
            def feed(it):
                for det in it.get_input_details():
                    it.set_tensor(det["index"], xs[det["name"].split("_")[-1].split(":")[0]])
            print(json.dumps(node_cost(b, feed, want, mode, args.n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
