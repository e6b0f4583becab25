"""What an artifact holds, node by node: kinds, inputs, shapes, weights, widths, proven
bounds and memory (what ``snnfpga describe`` prints).

Memory is counted in bits, per node: ``weights`` (weights and biases at their declared
widths), ``params`` (thresholds), ``state`` (membranes and scores that live across steps,
and current buffers that several nodes read within a step), each from the node kind's own
:meth:`~snnfpga.model.kinds.base.Node.memory_bits`.
"""

from __future__ import annotations

from snnfpga.model.artifact import Artifact, manifest_dict


def describe(art: Artifact) -> dict:
    """A JSON-ready description of ``art`` (see the module docstring)."""
    graph = art.graph
    nodes = []
    totals = {"weights": 0, "weight_bits": 0, "param_bits": 0, "state_bits": 0, "neurons": 0}
    for node in graph.nodes:
        t = graph.types[node.name]
        params = {k: getattr(node, k) for k in node.param_fields() if not k.endswith("_bits")}
        widths = {k: getattr(node, k) for k in node.param_fields() if k.endswith("_bits")}
        memory = node.memory_bits(t)
        row = {"name": node.name, "kind": node.KIND, "inputs": list(node.inputs), "shape": list(t.shape),
               "signal": t.signal, "params": params, "weights": node.weight_count(), "widths": widths,
               "bounds": {k: [int(v[0]), int(v[1])] for k, v in graph.proofs[node.name].registers.items()},
               "memory_bits": {k: int(v) for k, v in memory.items()}}
        if node.SPIKING:
            row["neurons"] = t.size
            totals["neurons"] += t.size
            row["saturation"] = "active" if node.saturates(graph.proofs[node.name]) else "unreachable"
        nodes.append(row)
        totals["weights"] += row["weights"]
        totals["weight_bits"] += memory["weights"]
        totals["param_bits"] += memory["params"]
        totals["state_bits"] += memory["state"]
    totals["memory_bits"] = totals["weight_bits"] + totals["param_bits"] + totals["state_bits"]
    head = manifest_dict(art, "")
    return {"model": art.name, "version": head["version"], "input": head["input"], "encoder": head["encoder"],
            "timesteps": art.timesteps, "chain": art.is_chain, "nodes": nodes, "totals": totals}


def _compact(params: dict) -> str:
    return " ".join(f"{k}={'none' if v is None else v}" for k, v in params.items())


def _bits(n: int) -> str:
    return f"{n / 1000:,.1f} kbit" if n >= 10_000 else f"{n:,} bit"


def format_lines(desc: dict) -> list[str]:
    """``describe``'s table as text lines."""
    enc = desc["encoder"]
    enc_text = {"rate": lambda: f"rate (phase {enc['phase']})", "threshold": lambda: f"threshold (level {enc['level']})",
                "ttfs": lambda: f"time-to-first-spike ({enc['bits']} bits)"}[enc["kind"]]()
    inp = desc["input"]
    lines = [f"model {desc['model']}: {inp['height']}x{inp['width']} pixels, {enc_text} encoder, "
             f"T={desc['timesteps']}, {len(desc['nodes'])} nodes "
             f"({'a chain, artifact version 1' if desc['chain'] else 'a graph, artifact version 2'})"]
    header = ("node", "kind", "inputs", "output", "weights", "widths", "proven bounds", "memory")
    rows = []
    for n in desc["nodes"]:
        dims = "x".join(map(str, n["shape"]))
        out = f"{n['signal']}[{dims}]"
        extra = _compact({k: v for k, v in n["params"].items() if k != "unit"})
        kind = n["kind"] + (f" ({extra})" if extra else "")
        if n["signal"] == "current" and "unit" in n["params"]:
            out += f" {n['params']['unit']}"
        widths = " ".join(f"{k.removesuffix('_bits')}:{v}" for k, v in n["widths"].items())
        if n.get("saturation") == "active":
            widths += " (saturates)"
        bounds = " ".join(f"{k} {lo}..{hi}" for k, (lo, hi) in n["bounds"].items())
        mem = sum(n["memory_bits"].values())
        rows.append((n["name"], kind, ",".join(n["inputs"]), out, f"{n['weights']:,}" if n["weights"] else "",
                     widths, bounds, _bits(mem) if mem else ""))
    widths_col = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths_col)
    lines.append(fmt.format(*header).rstrip())
    lines += [fmt.format(*r).rstrip() for r in rows]
    t = desc["totals"]
    lines.append(f"total: {t['weights']:,} weights ({_bits(t['weight_bits'])} with biases), {t['neurons']:,} spiking "
                 f"neurons, thresholds {_bits(t['param_bits'])}, state {_bits(t['state_bits'])}; "
                 f"memory {_bits(t['memory_bits'])}")
    return lines
