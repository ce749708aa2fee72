"""What a secure inference cost: `tflite_mpc.report(delegate)` returns a `Report`."""
from __future__ import annotations

import copy
import csv
import io
import json
import os

_MB = 1e6  # the report's MB are 10^6 bytes


class Report(dict):
    """Cost of the last inference run with a delegate, per layer and per party.

    A dict (``report["layers"]`` etc. work as they always have) that prints as a table
    (``print(report)``) and exports with `to_dict`, `to_json`, `to_csv` and `plot`.

    Keys (`to_dict` returns exactly this structure; a *cost* is a dict
    ``{"bytes_sent", "bytes_recv", "rounds", "depth", "bytes_sent_to": [to P0, to P1, to P2],
    "seconds"}`` of one party):

    - ``seconds``: wall time of the inference in this process.
    - ``parties``: per party, its total cost (the sum of the layers, weight sharing included).
    - ``layers``: in execution order, ``{"node", "op", "shape", "seconds", "parties": [cost per
      party]}``; the first inference also has ``{"node": -1, "op": "share weights", "shape": None}``
      (the model owner secret-shares the weights once). ``shape`` is the node's output shape;
      ``seconds`` this process's (first hosted party's) time.
    - ``reveal``: per party, what opening the declared outputs cost; ``reveal_outside``: the part
      of it in no layer (outputs without a DEQUANTIZE), hence not in ``parties``.
    - ``parties_seen``: the parties whose figures are real. Local mode: all three. Distributed
      mode: this process's party, and at the data owner and the output recipients also the
      other parties, whose figures arrive in a cost message after the outputs are opened (see
      the README, "Reports"); any other party's figures are zeros.
    - ``party``: the party this process is (distributed mode) or None (local mode).
    - ``protocol``, ``truncation``, ``fc_rounding``, ``roles`` (``data_owner``, ``model_owner``,
      ``output_to``), ``estimated`` (option estimate: the costs are estimates, mpc/estimate.h),
      ``graph_hash``, ``network`` (the emulated network: ``profile``,
      ``latency_ms``, ``bandwidth_mbps``; None without), ``argmax`` (with output=argmax, at a
      recipient), ``notes`` (e.g. a peer's cost message that was refused).

    ``rounds`` counts communication rounds; ``depth`` the longest chain of dependent messages
    (local mode; 0 over TCP).
    """

    # ------------------------------------------------------------------ data
    @property
    def parties_seen(self) -> list[int]:
        """The parties whose figures are real (the others' are zeros)."""
        return list(self.get("parties_seen", range(len(self.get("parties", [])))))

    @property
    def layers(self) -> list[dict]:
        return self.get("layers", [])

    def to_dict(self) -> dict:
        """A plain dict (deep copy) of the structure described in the class docstring."""
        return copy.deepcopy(dict(self))

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    _CSV_FIELDS = ("layer", "node", "op", "shape", "party", "seen", "seconds", "bytes_sent", "bytes_recv",
                   "rounds", "depth", "bytes_sent_to_p0", "bytes_sent_to_p1", "bytes_sent_to_p2")

    def to_csv(self, path=None) -> str | None:
        """One row per layer and party (``seen``: the party's figures are real). Writes the
        file `path`, or returns the CSV text if `path` is None."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self._CSV_FIELDS)
        seen = set(self.parties_seen)
        for k, layer in enumerate(self.layers):
            shape = "x".join(map(str, layer.get("shape") or []))
            for i, c in enumerate(layer["parties"]):
                w.writerow([k, layer["node"], layer["op"], shape, i, int(i in seen), c["seconds"], c["bytes_sent"],
                            c["bytes_recv"], c["rounds"], c["depth"], *c["bytes_sent_to"]])
        if path is None:
            return buf.getvalue()
        with open(os.fspath(path), "w", newline="") as f:
            f.write(buf.getvalue())
        return None

    # ------------------------------------------------------------------ text
    def _party_label(self, i: int) -> str:
        """P0 (data owner, output), ..."""
        roles = self.get("roles") or {}
        what = []
        if roles.get("data_owner") == i:
            what.append("data owner")
        if roles.get("model_owner") == i:
            what.append("model owner")
        if i in (roles.get("output_to") or []):
            what.append("output")
        if self.get("party") == i:
            what.append("this process")
        return f"P{i}" + (f" ({', '.join(what)})" if what else "")

    def _roles(self) -> str:
        return "parties: " + "; ".join(self._party_label(i) for i in range(len(self.get("parties", []))))

    @staticmethod
    def _rounds_cell(costs: list[dict]) -> str:
        rounds = [c["rounds"] for c in costs]
        return str(rounds[0]) if len(set(rounds)) <= 1 else "/".join(map(str, rounds))

    def _rows(self):
        """(cells of each row, the parties shown); cells: node, op, shape, rounds, then per
        shown party ms, MB out, MB in."""
        seen = [i for i in self.parties_seen if i < len(self.get("parties", []))]

        def cells(node, op, shape, costs):
            shown = [costs[i] for i in seen]
            row = [node, op, shape, self._rounds_cell(shown) if shown else ""]
            for c in shown:
                row += [f"{c['seconds'] * 1e3:.1f}", f"{c['bytes_sent'] / _MB:.3f}", f"{c['bytes_recv'] / _MB:.3f}"]
            return row

        rows = []
        for layer in self.layers:
            shape = "x".join(map(str, layer.get("shape") or []))
            rows.append(cells(str(layer["node"]) if layer["node"] >= 0 else "-", layer["op"], shape, layer["parties"]))
        total = cells("", "total", "", self.get("parties", []))
        return rows, total, seen

    def __str__(self) -> str:
        rows, total, seen = self._rows()
        head = ["node", "op", "output shape", "rounds"] + ["ms", "MB out", "MB in"] * len(seen)
        left = 3  # node, op, shape: left-aligned (node right-aligned); numbers right-aligned
        widths = [max(len(r[k]) for r in rows + [total, head]) for k in range(len(head))]
        gap = "  "

        def fmt(r):
            out = []
            for k, (cell, w) in enumerate(zip(r, widths)):
                out.append(cell.ljust(w) if 0 < k < left else cell.rjust(w))
                # a wider gap before each party's group
                out.append("   " if k >= 3 and (k - 3) % 3 == 0 and k + 1 < len(r) else gap)
            return "".join(out[:-1]).rstrip()

        # party group labels over their columns
        starts, pos = [], 0
        for k, w in enumerate(widths):
            starts.append(pos)
            pos += w + (3 if k >= 3 and (k - 3) % 3 == 0 else 2)
        groups = ""
        for g, i in enumerate(seen):
            a = starts[4 + 3 * g]
            b = starts[4 + 3 * g + 2] + widths[4 + 3 * g + 2]
            groups = groups.ljust(a) + f" P{i} ".center(b - a, "-")
        rule = "-" * len(fmt(head))
        lines = [self._title(), self._roles(), groups.rstrip(), fmt(head), rule] + [fmt(r) for r in rows] + [rule, fmt(total)]
        lines += self._summary()
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Report: {len(self.layers)} layers, {self.get('seconds', 0):.3f} s, "
                f"parties seen {self.parties_seen}; print() for the table, .to_dict() for the data>")

    def _title(self) -> str:
        mode = "local mode (all three parties in this process)"
        if self.get("party") is not None:
            mode = f"distributed mode, this process is P{self['party']}"
        if self.get("estimated"):
            mode = "ESTIMATE (option estimate: no MPC run, nothing computed; see tflite_mpc.cost)"
        return (f"tflite-mpc report: {self.get('protocol', 'rep3')}, truncation {self.get('truncation', '?')}, "
                f"fc_rounding {self.get('fc_rounding', '?')}; {mode}")

    def _summary(self) -> list[str]:
        out = []
        parties = self.get("parties", [])
        seen = [i for i in self.parties_seen if i < len(parties)]
        unseen = [i for i in range(len(parties)) if i not in seen]
        if seen:
            tot = [parties[i] for i in seen]
            depth = max(c["depth"] for c in tot)
            out.append(f"rounds {self._rounds_cell(tot)}, depth {depth}"
                       + (" (longest chain of dependent messages)" if depth else " (depth: not tracked over TCP)")
                       + f"; {sum(c['bytes_sent'] for c in tot) / _MB:.3f} MB sent by "
                       + ", ".join(f"P{i}" for i in seen) + f"; wall time {self.get('seconds', 0) * 1e3:.1f} ms here")
        rev = self.get("reveal") or []
        if any(c["rounds"] for c in rev):
            outside = any(c["rounds"] or c["bytes_sent"] or c["bytes_recv"] for c in self.get("reveal_outside") or [])
            to = ", ".join(f"P{i}" for i in (self.get("roles") or {}).get("output_to", []))
            got = sum(rev[i]["bytes_recv"] for i in seen)
            out.append(f"opening the outputs (to {to}): {max(c['rounds'] for c in rev)} round(s), {got} bytes "
                       f"received; " + ("not in the rows above" if outside else "in the DEQUANTIZE row(s) above"))
        net = self.get("network")
        if net:
            bw = net.get("bandwidth_mbps")
            out.append(f"network emulated: {net.get('profile')}, {net.get('latency_ms')} ms one-way latency, "
                       + (f"{bw:g} Mbit/s per link and direction" if bw else "unlimited bandwidth"))
        else:
            out.append("network: not emulated")
        if unseen:
            out.append("not shown: " + ", ".join(f"P{i}" for i in unseen) + " (their figures reach only the data owner "
                       "and the output recipients)")
        out += [f"note: {n}" for n in self.get("notes") or []]
        return out

    # ------------------------------------------------------------------ plot
    def plot(self, path=None, title: str | None = None):
        """A figure of the per-layer costs: time per party (bars) with the cumulative time,
        bytes sent per party (stacked bars) with the rounds per layer on a second axis, and the
        cumulative traffic and rounds. Saves it to `path` (PNG, SVG, ... by its extension) if
        given; returns the matplotlib Figure. Needs matplotlib: ``pip install 'tflite-mpc[plot]'``."""
        try:
            from matplotlib.figure import Figure
        except ImportError as e:
            raise ImportError("Report.plot needs matplotlib: pip install 'tflite-mpc[plot]' "
                              "(or pip install matplotlib)") from e
        import itertools

        layers = self.layers
        seen = [i for i in self.parties_seen if i < len(self.get("parties", []))]
        x = list(range(len(layers)))
        labels = [(f"{l['node']} " if l["node"] >= 0 else "") + l["op"] for l in layers]
        fig = Figure(figsize=(max(8.0, 0.28 * len(layers) + 3), 9), dpi=100, layout="constrained")
        ax_t, ax_b, ax_c = fig.subplots(3, 1, sharex=True)
        colors = ["tab:blue", "tab:orange", "tab:green"]
        width = 0.8 / max(1, len(seen))
        # time per layer, one bar per party; cumulative time of this process's layers
        for g, i in enumerate(seen):
            ax_t.bar([k - 0.4 + width * (g + 0.5) for k in x], [l["parties"][i]["seconds"] * 1e3 for l in layers],
                     width, color=colors[i % 3], label=self._party_label(i))
        ax_t.set_ylabel("time per layer (ms)")
        ax_t2 = ax_t.twinx()
        ax_t2.plot(x, list(itertools.accumulate(l["seconds"] for l in layers)), color="black", marker=".",
                   label="cumulative (s)")
        ax_t2.set_ylabel("cumulative time (s)")
        ax_t.legend(loc="upper left", fontsize=8)
        ax_t2.legend(loc="upper center", fontsize=8)
        # bytes sent per layer, stacked by party; rounds per layer on the second axis
        bottom = [0.0] * len(layers)
        for i in seen:
            mb = [l["parties"][i]["bytes_sent"] / _MB for l in layers]
            ax_b.bar(x, mb, 0.8, bottom=bottom, color=colors[i % 3], label=f"P{i} sent")
            bottom = [a + b for a, b in zip(bottom, mb)]
        ax_b.set_ylabel("MB sent per layer")
        ax_b.legend(loc="upper left", fontsize=8)
        ax_b2 = ax_b.twinx()
        if seen:
            ax_b2.plot(x, [max(l["parties"][i]["rounds"] for i in seen) for l in layers], color="crimson",
                       marker="o", linestyle="none", markersize=4, label="rounds")
        ax_b2.set_ylabel("rounds per layer", color="crimson")
        ax_b2.legend(loc="upper center", fontsize=8)
        # cumulative traffic (all parties seen) and cumulative rounds
        ax_c.plot(x, list(itertools.accumulate(bottom)), color="tab:purple", marker=".", label="MB sent (cumulative)")
        ax_c.set_ylabel("cumulative MB sent")
        ax_c.legend(loc="upper left", fontsize=8)
        ax_c2 = ax_c.twinx()
        if seen:
            ax_c2.plot(x, list(itertools.accumulate(max(l["parties"][i]["rounds"] for i in seen) for l in layers)),
                       color="crimson", marker=".", label="rounds (cumulative)")
        ax_c2.set_ylabel("cumulative rounds", color="crimson")
        ax_c2.legend(loc="upper center", fontsize=8)
        ax_c.set_xticks(x)
        ax_c.set_xticklabels(labels, rotation=90, fontsize=7)
        ax_c.set_xlim(-0.6, len(layers) - 0.4)
        parties = self.get("parties", [])
        mb = sum(parties[i]["bytes_sent"] for i in seen) / _MB
        rounds = max((parties[i]["rounds"] for i in seen), default=0)
        fig.suptitle(title or (f"{self.get('protocol', 'rep3')}, truncation {self.get('truncation', '?')}: "
                               f"{self.get('seconds', 0):.2f} s, {mb:.1f} MB sent, {rounds} rounds"
                               + (f", network {self['network']['profile']}" if self.get("network") else "")))
        if path is not None:
            fig.savefig(os.fspath(path))
        return fig
