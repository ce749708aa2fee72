"""Shared by benchmarks/elementwise.py and benchmarks/arith.py: the cost of a single-op
model's node under the delegate (three in-process rep3 parties)."""
import resource
import statistics

import numpy as np

import tflite_mpc
from tflite_mpc import modelgen


def node_cost(b, feed, want, mode, n, repeat):
    """One interpreter invoked repeat + 1 times (the first run warms the buffer pool);
    `feed(it)` sets the inputs. Returns the JSON record the two benchmarks print."""
    d = tflite_mpc.load_delegate(truncation=mode)
    it = modelgen._interpreter(b, reference=False, delegates=[d])
    it.allocate_tensors()
    outp = it.get_output_details()[0]["index"]
    times, cpu, same = [], [], True
    for r in range(repeat + 1):
        feed(it)
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        it.invoke()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        layer = [lay for lay in tflite_mpc.report(d)["layers"] if lay["node"] >= 0][0]
        if r:
            times.append(max(p["seconds"] for p in layer["parties"]))
            cpu.append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
        same = same and np.array_equal(it.get_tensor(outp), want)
    parties = layer["parties"]
    return {
        "op": layer["op"], "truncation": mode, "n": n,
        "seconds": round(statistics.median(times), 3),
        "ns_per_element": round(statistics.median(times) / n * 1e9, 1),
        "cpu_seconds_all_parties": round(statistics.median(cpu), 3),
        "bytes_per_element_max_party": round(max(p["bytes_sent"] for p in parties) / n, 1),
        "rounds": parties[0]["rounds"], "equals_reference": bool(same)}
