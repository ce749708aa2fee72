"""Secure MobileNetV1 inference benchmark (int8, random weights, built locally).

Prints one JSON line: seconds (median secure invoke), bytes_per_party (max over
parties of bytes sent per inference), rounds, plaintext TFLite time (default
optimized kernels, one thread) and the ratio, plus agreement with BUILTIN_REF.

  python benchmarks/mobilenet.py --alpha 0.25 --size 128 [--truncation exact] [--repeat 5] [--batch 8]
                                [--protocol rep3|mal3]

--batch N builds the model with batch N (modelgen.mobilenet_v1(batch=N): same weights and,
up to float rounding in calibration, quantization as batch 1) and feeds N random images;
"seconds", bytes and the plaintext time are per invoke (the whole batch),
"seconds_per_image" = seconds / N; rounds should equal batch 1's.

Modes: --mode local (three parties as threads of this process; the default),
--mode tcp / --mode tls (three processes on loopback: parties 1 and 2 are
`tflite-mpc party` processes, this process is the data owner, party 0; tcp is
plaintext, tls is TLS 1.3 with mutual authentication). In those modes the
bytes and rounds are party 0's as counted by its transport.

--network lan|regional|wan (default none) emulates the links between the
parties (delegate option `network`; tcp/tls: the party configuration's, so
every party emulates its outgoing links); the line then also gives the
prediction depth x one-way latency + bytes_per_party x 8 / bandwidth: depth
is the longest chain of dependent messages (report "depth"; a little more than
the counted rounds), and in every round all parties send, then receive, so a
hop costs one one-way latency = RTT / 2.

The measurement loops are `tflite-mpc bench`'s (tflite_mpc.commands.measure); the
interpreters come from the runtime it picks (ai_edge_litert if installed).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from tflite_mpc import _quiet

_quiet.set_environment()  # before TensorFlow is imported


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alpha", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--truncation", default="probabilistic", choices=["probabilistic", "exact"])
    ap.add_argument("--protocol", default="rep3", choices=["rep3", "mal3"])
    ap.add_argument("--mode", default="local", choices=["local", "tcp", "tls"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1, help="images per invoke (the model's batch dimension)")
    ap.add_argument("--network", default="none", choices=["none", "lan", "regional", "wan"])
    args = ap.parse_args()

    import tflite_mpc
    from tflite_mpc import commands, modelgen

    t0 = time.perf_counter()
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    model = modelgen.mobilenet_v1(args.alpha, args.size, batch=args.batch)
    build_s = time.perf_counter() - t0
    x = modelgen.random_input(model, seed=0)
    assert x[0].shape[0] == args.batch, x[0].shape

    ref = commands.plain_interpreter(model)  # reference kernels (BUILTIN_REF)
    commands.measure(ref, x, runs=1)
    want = ref.get_tensor(ref.get_output_details()[0]["index"])

    plain = commands.plain_interpreter(model, reference=False, num_threads=1)  # default kernels (XNNPACK)
    pt = commands.measure(plain, x, runs=max(20, args.repeat), warmup=1)["times"]

    procs = []
    if args.mode == "local":
        sec, d = commands.secure_interpreter(model, {"truncation": args.truncation, "network": args.network,
                                                     "protocol": args.protocol})
    else:
        d, sec, procs = start_parties(model, args)
    # first run: the model owner also secret-shares the weights
    m = commands.measure(sec, x, runs=args.repeat, first=True, delegate=d)
    first_s, st, rep = m["first_s"], m["times"], m["report"]
    setup = commands.weight_sharing(m["first_report"])
    got = sec.get_tensor(sec.get_output_details()[0]["index"])
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    secure_s = statistics.median(st)
    plain_s = statistics.median(pt)
    net = rep.get("network")
    extra = {}
    if net:
        bw = net["bandwidth_mbps"]
        bytes_pp = max(p["bytes_sent"] for p in rep["parties"])
        # the critical path in message hops (local mode; tcp/tls: not tracked, use the rounds)
        depth = max(p.get("depth", 0) for p in rep["parties"]) or rep["parties"][0]["rounds"]
        lat_s = depth * net["latency_ms"] * 1e-3
        bw_s = bytes_pp * 8 / (bw * 1e6) if bw else 0.0
        # every link has its own bandwidth: the busiest link's bytes give a lower bound
        link = max(max(p.get("bytes_sent_to", [0])) for p in rep["parties"])
        bw_link_s = link * 8 / (bw * 1e6) if bw else 0.0
        extra = {"network": net, "depth": depth, "predicted_network_s": round(lat_s + bw_s, 3),
                 "predicted_latency_s": round(lat_s, 3), "predicted_transfer_s": round(bw_s, 3),
                 "predicted_transfer_busiest_link_s": round(bw_link_s, 3)}
    print(json.dumps({
        "bench": "mobilenet_v1", "protocol": args.protocol, "alpha": args.alpha, "size": args.size,
        "batch": args.batch, "mode": args.mode,
        "truncation": args.truncation, "seconds": round(secure_s, 4),
        "seconds_per_image": round(secure_s / args.batch, 4),
        "bytes_per_party": max(p["bytes_sent"] for p in rep["parties"]),  # tcp/tls: party 0's only
        "bytes_sent_by_party": [p["bytes_sent"] for p in rep["parties"]],
        "rounds": rep["parties"][0]["rounds"],
        "plain_tflite_s": round(plain_s, 5), "secure_over_plain": round(secure_s / plain_s, 1),
        "first_invoke_s": round(first_s, 3),
        "weight_sharing_bytes": setup["parties"][args_owner(d)]["bytes_sent"] if setup else 0,
        "identical_to_reference": bool(diff.max() == 0), "max_lsb_diff": int(diff.max()),
        "simd": tflite_mpc.simd_level(), "model_build_s": round(build_s, 1), **extra,
    }), flush=True)
    del sec, d  # release before interpreter teardown
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)


def args_owner(_):
    return 1  # default model_owner


def start_parties(model, args):
    """Parties 1 and 2 as processes on loopback; returns party 0's delegate and interpreter."""
    import json
    import socket
    import subprocess
    import tempfile

    from tflite_mpc import cli, commands

    d = tempfile.mkdtemp(prefix="tflite-mpc-bench-")
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cfg = {"protocol": args.protocol, "truncation": args.truncation, "timeout": 600,
           "transport": "tls" if args.mode == "tls" else "tcp-insecure", "ca": "ca.pem",
           "roles": {"data_owner": 0, "model_owner": 1, "output_to": [0]}, "network": args.network,
           "parties": [{"id": i, "host": "127.0.0.1", "port": ports[i], "cert": f"party{i}.pem",
                        "key": f"party{i}.key"} for i in range(3)]}
    path = os.path.join(d, "parties.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    if args.mode == "tls":
        cli.make_certs(path, d, days=1)
    paths = {1: os.path.join(d, "model.tflite"), 2: os.path.join(d, "public.tflite")}
    with open(paths[1], "wb") as f:
        f.write(model)
    public = cli.strip_model(model)
    with open(paths[2], "wb") as f:
        f.write(public)
    procs = [subprocess.Popen([sys.executable, "-m", "tflite_mpc", "party", "--config", path, "--id", str(i),
                               "--model", paths[i]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in (1, 2)]
    it, dl = commands.secure_interpreter(public, {"parties": path, "party": 0})
    return dl, it, procs


if __name__ == "__main__":
    sys.exit(main())
