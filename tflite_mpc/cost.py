"""What a model will cost before running it: ``tflite-mpc inspect MODEL``.

Every node of the model with its op, output shape and quantization, and whether it runs
securely, stays public (shape arithmetic) or makes the model refused (and why); then, for
each protocol and truncation mode, the estimated bytes per party, rounds and compute time
per layer, and the time of one inference on a given network.

No MPC is run on the model: the delegate (option ``estimate=true``) executes the kernels
against a recording protocol whose shares are all zero, and measures each primitive that
communicates in an in-process session of the real protocol: products, input sharing and opening
at full size, the others on a sample (at most 16384 elements, whole periods of their per-channel
parameters), scaling bytes and time to the
full size (mpc/estimate.h). Rounds are exact (they never depend on the size); bytes are
within 0.4% of a measured run (benchmarks/RESULTS.md); compute is this machine's, a rough
figure, with the three parties sharing its cores as in local mode.

The time on a network is compute + depth x RTT / 2 + the busiest link's bytes / bandwidth,
per layer: in every round all parties send, then receive (a hop costs one one-way latency;
depth is the longest chain of dependent messages, a little more than the rounds), and every
link and direction has its own bandwidth.
"""
from __future__ import annotations

import json
import os

from . import _native
from .delegate import CheckResult, default_runtime, interpreter_api, load_delegate, validate_options

class Refused(ValueError):
    """The delegate refuses the model (the message names the nodes and why)."""


#: name -> (RTT in ms, Mbit/s per link and direction): the delegate's emulation profiles
NETWORKS = {"lan": (0.1, 10000.0), "regional": (2.0, 1000.0), "wan": (40.0, 100.0)}
TRUNCATIONS = ("probabilistic", "exact")


def parse_network(text: str) -> tuple[str, float, float]:
    """'lan' | 'regional' | 'wan' | 'RTT_MS,MBPS' -> (name, rtt_ms, mbps)."""
    if text in NETWORKS:
        return (text, *NETWORKS[text])
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        rtt, mbps = float(parts[0]), float(parts[1])
        if not (0 <= rtt < 1e6 and 0 < mbps < 1e9):
            raise ValueError
    except ValueError:
        raise ValueError(f"network {text!r}: expected lan, regional, wan or RTT_MS,MBPS "
                         "(e.g. 40,100: 40 ms round-trip time, 100 Mbit/s)") from None
    return (f"{rtt:g} ms RTT, {mbps:g} Mbit/s", rtt, mbps)


def _interpreter(model, runtime, delegates=()):
    kw = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    return interpreter_api(runtime)[0](experimental_delegates=list(delegates), **kw)


def _zero_inputs(it):
    import numpy as np

    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))


def estimate(model, *, protocol: str = "rep3", truncation: str = "probabilistic", runtime: str | None = None,
             **options) -> dict:
    """Estimated cost of one inference of `model` (a path or the model's bytes), without running
    MPC: the report of `tflite_mpc.report()` (layers, parties, seconds; "estimated": True), of a
    first inference (its "share weights" entry is the one-time sharing of the weights). Raises
    Refused (a ValueError) with the delegate's message if the model is refused; ValueError for
    bad options."""
    runtime = default_runtime(runtime)
    d = load_delegate(runtime, protocol=protocol, truncation=truncation, estimate=True, **options)
    try:
        it = _interpreter(model, runtime, [d])
        it.allocate_tensors()
        _zero_inputs(it)
        it.invoke()  # e.g. the model owner's refusal of a bias that could overflow int32 comes here
    except (RuntimeError, ValueError) as e:
        raise Refused(str(e).split("\nRestored original execution plan")[0]) from None
    from .delegate import report

    return dict(report(d))


def network_seconds(rep: dict, rtt_ms: float, mbps: float, *, weights: bool = True) -> dict:
    """Time of the inference in `rep` (a report, estimated or measured) on a network: per layer
    compute + depth x RTT/2 + busiest link bytes x 8 / bandwidth. weights=False leaves out the
    one-time weight sharing (node -1). Returns {seconds, compute_s, latency_s, transfer_s}."""
    comp = lat = xfer = 0.0
    opening = {"node": 0, "parties": rep.get("reveal_outside") or []}  # outputs opened after the last layer
    for layer in rep["layers"] + ([opening] if opening["parties"] else []):
        if not weights and layer["node"] < 0:
            continue
        ps = layer["parties"]
        comp += max(p["seconds"] for p in ps)
        depth = max(max(p.get("depth", 0), p["rounds"]) for p in ps)
        lat += depth * rtt_ms / 2e3
        link = max(max(p.get("bytes_sent_to", [0])) for p in ps)
        xfer += link * 8 / (mbps * 1e6)
    return {"seconds": comp + lat + xfer, "compute_s": comp, "latency_s": lat, "transfer_s": xfer}


def _node_table(model, runtime):
    """Per node (execution order): op, output shapes, dtype and quantization, from a plain
    interpreter (no delegate)."""
    it = _interpreter(model, runtime)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    out = {}
    for op in it._get_ops_details():
        outs = []
        for ti in op["outputs"]:
            t = tensors.get(int(ti))
            if t is None:
                continue
            q = t.get("quantization_parameters", {})
            scales, zps = q.get("scales", []), q.get("zero_points", [])
            outs.append({"shape": [int(s) for s in t["shape"]], "dtype": t["dtype"].__name__,
                         "scale": [float(s) for s in scales][:1] + (["per-channel"] if len(scales) > 1 else []),
                         "zero_point": [int(z) for z in zps][:1]})
        out[int(op["index"])] = outs
    return out


#: protocols the cost model knows (mal3's proofs are not modelled yet: estimate=true refuses it)
ESTIMATED_PROTOCOLS = ["rep3"]


def inspect(model, *, protocols=None, truncations=TRUNCATIONS, network: str | None = "wan",
            runtime: str | None = None) -> dict:
    """Everything `tflite-mpc inspect` prints, as a dict (what --json writes):
    {model, accepted, message, nodes: [{node, op, status, detail, outputs}], network,
     estimates: [{protocol, truncation, report, totals, network}]}. totals: the report's
    bytes_per_party, rounds and compute_s (the layers of a first inference), and "first" / "next"
    {bytes_busiest_party, rounds, seconds}: a first inference (with the weights' sharing) and every
    later one, both with the outputs' opening after the last layer."""
    runtime = default_runtime(runtime)
    protocols = list(protocols or ESTIMATED_PROTOCOLS)
    net = parse_network(network) if network and network != "none" else None
    shapes = _node_table(model, runtime)
    result = {"model": model if isinstance(model, str) else "<bytes>", "accepted": True, "message": "",
              "nodes": [], "network": None, "estimates": []}
    if net:
        result["network"] = {"name": net[0], "rtt_ms": net[1], "mbps": net[2]}
    first = True
    for proto in protocols:
        for trunc in truncations:
            try:
                rep = estimate(model, protocol=proto, truncation=trunc, runtime=runtime)
                message = ""
            except Refused as e:
                rep, message = None, str(e)
            if first:  # the verdict per node (the same for every protocol and mode)
                nodes = _native.delegate_last_check()
                if message and not any(n["status"] == "refused" for n in nodes):
                    nodes = [{"node": -1, "op": "(model)", "status": "refused", "detail": message}]
                for n in nodes:
                    n["outputs"] = shapes.get(n["node"], [])
                result["nodes"] = nodes
                result["accepted"] = not message
                result["message"] = message
                first = False
            if rep is None:
                if result["accepted"]:  # accepted under one mode, refused under another
                    result["estimates"].append({"protocol": proto, "truncation": trunc, "refused": message})
                continue
            if not result["accepted"]:
                continue  # refused under the first mode: no estimates
            totals = {"bytes_per_party": [p["bytes_sent"] for p in rep["parties"]],
                      "rounds": max(p["rounds"] for p in rep["parties"]),
                      "compute_s": rep["seconds"]}
            setup = [layer for layer in rep["layers"] if layer["node"] < 0]
            totals["weights_bytes_per_party"] = [sum(layer["parties"][i]["bytes_sent"] for layer in setup)
                                                 for i in range(3)]
            for key, weights in (("first", True), ("next", False)):
                b, rounds, secs = _sums(rep, weights)
                totals[key] = {"bytes_busiest_party": b, "rounds": rounds, "seconds": secs}
            e = {"protocol": proto, "truncation": trunc, "report": rep, "totals": totals}
            if net:
                e["network"] = {"first": network_seconds(rep, net[1], net[2]),
                                "next": network_seconds(rep, net[1], net[2], weights=False)}
            result["estimates"].append(e)
        if not result["accepted"]:
            break
    return result


def _shape(outs):
    if not outs:
        return ""
    o = outs[0]
    s = "x".join(str(d) for d in o["shape"]) + " " + o["dtype"]
    return s + (f" (+{len(outs) - 1})" if len(outs) > 1 else "")


def _quant(outs):
    if not outs or not outs[0]["scale"]:
        return ""
    o = outs[0]
    return f"s={o['scale'][0]:.3g} zp={o['zero_point'][0] if o['zero_point'] else 0}"


def _sums(rep, weights=True):
    """(bytes sent by the busiest party, rounds, seconds of the slowest party) of the layers,
    with or without the weight sharing (node -1), and the outputs' opening after the last layer."""
    parties = [[layer["parties"][i] for layer in rep["layers"] if weights or layer["node"] >= 0]
               + list(rep.get("reveal_outside") or [])[i:i + 1] for i in range(3)]
    return (max(sum(c["bytes_sent"] for c in p) for p in parties), max(sum(c["rounds"] for c in p) for p in parties),
            max(sum(c["seconds"] for c in p) for p in parties))


def format_text(r: dict) -> str:
    """The human-readable form of inspect()."""
    lines = []
    nodes = CheckResult([{k: n[k] for k in ("node", "op", "status", "detail")} for n in r["nodes"]], r["message"])
    w_op = max([len(n["op"]) for n in r["nodes"]] + [2])
    w_sh = max([len(_shape(n["outputs"])) for n in r["nodes"]] + [6])
    w_q = max([len(_quant(n["outputs"])) for n in r["nodes"]] + [12])
    lines.append(f"{'node':>5}  {'op':<{w_op}}  {'output':<{w_sh}}  {'quantization':<{w_q}}  {'status':<8}  detail")
    for n in r["nodes"]:
        lines.append(f"{n['node']:>5}  {n['op']:<{w_op}}  {_shape(n['outputs']):<{w_sh}}  {_quant(n['outputs']):<{w_q}}  "
                     f"{n['status']:<8}  {n['detail']}")
    lines.append(str(nodes).splitlines()[-1])
    if not r["accepted"]:
        return "\n".join(lines)
    ests = [e for e in r["estimates"] if "report" in e]
    if not ests:
        return "\n".join(lines)
    lines.append("")
    lines.append("Estimated cost of one inference (no MPC run: primitives measured on samples on this machine; "
                 "MB = megabytes sent by the busiest party)")
    heads = [f"{e['protocol']} {e['truncation']}" for e in ests]
    cw = 24
    lines.append(f"{'':>5}  {'':<{w_op}}  " + "".join(f"{h:^{cw}}" for h in heads))
    lines.append(f"{'node':>5}  {'op':<{w_op}}  " + "".join(f"{'MB':>8}{'rounds':>7}{'ms':>9}" for _ in ests))
    base = ests[0]["report"]["layers"]
    for k, layer in enumerate(base):
        cells = ""
        for e in ests:
            lay = e["report"]["layers"][k] if k < len(e["report"]["layers"]) else None
            if lay is None:
                cells += " " * cw
                continue
            mb = max(p["bytes_sent"] for p in lay["parties"]) / 1e6
            rounds = max(p["rounds"] for p in lay["parties"])
            ms = max(p["seconds"] for p in lay["parties"]) * 1e3
            cells += f"{mb:>8.2f}{rounds:>7}{ms:>9.1f}"
        node = "" if layer["node"] < 0 else layer["node"]
        lines.append(f"{node:>5}  {layer['op']:<{w_op}}  {cells}")
    for label, weights in (("total, first", True), ("total, next", False)):
        cells = ""
        for e in ests:
            mb, rounds, secs = _sums(e["report"], weights)
            cells += f"{mb / 1e6:>8.2f}{rounds:>7}{secs * 1e3:>9.1f}"
        lines.append(f"{label:<{w_op + 7}}{cells}")
    lines.append("(first: the first inference, which also secret-shares the weights; next: every later one; "
                 "both with the opening of the outputs)")
    if r["network"]:
        nt = r["network"]
        lines.append("")
        lines.append(f"On {nt['name']}" + (f" ({nt['rtt_ms']:g} ms RTT, {nt['mbps']:g} Mbit/s)" if nt["name"] in NETWORKS
                                            else "") + ": compute + depth x RTT/2 + busiest link / bandwidth")
        for e in ests:
            f, n = e["network"]["first"], e["network"]["next"]
            lines.append(f"  {e['protocol']} {e['truncation']:<13}  {n['seconds']:8.2f} s per inference "
                         f"(latency {n['latency_s']:.2f} s, transfer {n['transfer_s']:.2f} s, compute "
                         f"{n['compute_s']:.2f} s); the first, sharing the weights: {f['seconds']:.2f} s")
    return "\n".join(lines)


def main(argv_args) -> int:
    """`tflite-mpc inspect`: exit 0 if the model is accepted, 1 if refused, 2 on bad arguments."""
    a = argv_args
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if not os.path.exists(a.model):
            raise ValueError(f"no such model: {a.model}")
        if a.protocol:
            validate_options({"protocol": a.protocol})
        r = inspect(a.model, protocols=[a.protocol] if a.protocol else None,
                    truncations=[a.truncation] if a.truncation else TRUNCATIONS, network=a.network,
                    runtime=a.runtime)
    except (ValueError, ImportError) as e:  # bad option or network, missing runtime (not a refusal)
        import sys

        print(f"tflite-mpc inspect: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r, default=float))
    else:
        print(format_text(r))
    return 0 if r["accepted"] else 1
