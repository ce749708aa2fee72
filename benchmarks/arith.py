"""Cost per element of the broadcasting binary ops (MUL, MAXIMUM, ...) under the delegate:
three in-process rep3 parties, two secret int8 graph inputs of shape [1, n] (no broadcast).

Prints one JSON line per op and truncation mode: seconds for the op's node (wall clock,
slowest party), CPU seconds of the whole invoke summed over the three party threads, bytes
sent per element (the most any party sends), rounds, and whether the output equals BUILTIN_REF.

Usage: python benchmarks/arith.py [--n 1000000] [--repeat 3] [--ops mul,maximum]
"""
import argparse
import json
import resource
import statistics

import numpy as np

import tflite_mpc
from tflite_mpc import modelgen

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
            # one interpreter, invoked repeat + 1 times: the first run warms the buffer pool
            d = tflite_mpc.load_delegate(truncation=mode)
            it = modelgen._interpreter(b, reference=False, delegates=[d])
            it.allocate_tensors()
            ins = {det["name"].split("_")[-1].split(":")[0]: det["index"] for det in it.get_input_details()}
            outp = it.get_output_details()[0]["index"]
            times, cpu, same = [], [], True
            for r in range(args.repeat + 1):
                for k, idx in ins.items():
                    it.set_tensor(idx, xs[k])
                c0 = resource.getrusage(resource.RUSAGE_SELF)
                it.invoke()
                c1 = resource.getrusage(resource.RUSAGE_SELF)
                rep = tflite_mpc.report(d)
                layer = [lay for lay in rep["layers"] if lay["node"] >= 0][0]
                if r:
                    times.append(max(p["seconds"] for p in layer["parties"]))
                    cpu.append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
                same = same and np.array_equal(it.get_tensor(outp), want)
            parties = layer["parties"]
            print(json.dumps({
                "op": layer["op"], "truncation": mode, "n": args.n,
                "seconds": round(statistics.median(times), 3),
                "ns_per_element": round(statistics.median(times) / args.n * 1e9, 1),
                "cpu_seconds_all_parties": round(statistics.median(cpu), 3),
                "bytes_per_element_max_party": round(max(p["bytes_sent"] for p in parties) / args.n, 1),
                "rounds": parties[0]["rounds"], "equals_reference": bool(same)}), flush=True)


if __name__ == "__main__":
    main()
