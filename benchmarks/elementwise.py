"""Cost per element of the element-wise int8 activations (public 256-entry table,
mpc::lookup256) under the delegate: three in-process rep3 parties.

Prints one JSON line per op: seconds for the op's node (wall clock, slowest party),
CPU seconds of the whole invoke summed over the three party threads, bytes sent per element
(the most any party sends), rounds, and whether the output equals BUILTIN_REF.

Usage: python benchmarks/elementwise.py [--n 1000000] [--repeat 3] [--ops logistic,relu]
"""
import argparse
import json

import numpy as np

from tflite_mpc import modelgen
from _node_cost import node_cost

OPS = ["logistic", "tanh", "hard_swish", "gelu", "leaky_relu", "relu6", "quantize"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ops", default=",".join(OPS))
    args = ap.parse_args()
    x = np.random.default_rng(0).integers(-128, 128, size=(1, args.n)).astype(np.int8)
    for kind in args.ops.split(","):
        b = modelgen.activation(kind, n=args.n, n_calib=2)
        want = modelgen.run_tflite(b, [x], reference=True)[0]
        for mode in ("probabilistic", "exact"):
            def feed(it):
                it.set_tensor(it.get_input_details()[0]["index"], x)
            print(json.dumps(node_cost(b, feed, want, mode, args.n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
