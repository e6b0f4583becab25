"""Verilog generation for layer graphs: ``<top>.v`` + ``<top>.json`` (deterministic).

As :mod:`snnfpga.rtl.generate` for chains: one self-contained Verilog file from Amaranth
(memory contents as ``initial`` blocks, no source paths, nothing from the clock or the
machine), and a JSON description: ports, the result payload, parameters, and per node the
engine it became (:mod:`snnfpga.rtl.graph_top`) with its lanes, groups and memories.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from snnfpga.rtl.decision import result_layout
from snnfpga.rtl.generate import (check_top_name, description_header, make_top, memory_contents, ports, to_verilog,
                                  weight_memory_kind)
from snnfpga.rtl.graph_top import GraphTopPlan
from snnfpga.rtl.ttfs_engine import ttfs_memories


def node_entries(plan: GraphTopPlan) -> list[dict]:
    """Per node in topological order: kind, role, lanes, groups and memories (depth x width)."""
    graph = plan.artifact.graph
    rows = []
    for node in graph.nodes:
        name = node.name
        row = {"name": name, "kind": node.KIND, "shape": list(graph.types[name].shape)}
        if name in plan.specs:
            spec, P, G, bits = plan.specs[name], plan.node_lanes[name], plan.groups(name), plan.current_bits(name)
            row.update(role="synapse (accumulate engine into its current buffer)", lanes=P, groups=G,
                       lines=spec.lines, weight_bits=node.weight_bits, buffer_bits=bits,
                       memories={"weights": dict(zip(("depth", "width"), plan.weight_shape(name)),
                                             kind=weight_memory_kind(plan)),
                                 "buffer": {"depth": spec.lines * G, "width": P * bits, "kind": "ram 2R1W"}})
            if name in plan.ttfs:
                mems = ttfs_memories(node, P)
                state, params = mems["state"], mems["params"]
                window = plan.ttfs[name]
                row.update(role="synapse (accumulate engine, one step's current) and ttfs neuron engine "
                                f"(integrate steps {window.start}..{window.start + window.steps - 1}, fire the next "
                                f"{window.steps})", slope_bits=node.slope_bits, membrane_bits=node.membrane_bits)
                row["memories"].update(state={"depth": state[0], "width": state[1], "kind": "ram 1R1W"},
                                       params={"depth": params[0], "width": params[1], "kind": "rom"})
        elif name in plan.lifs:
            hw, P, G = plan.lifs[name], plan.node_lanes[name], plan.groups(name)
            row.update(role="neuron engine (lif)", lanes=P, groups=G, lines=hw.layout.lines,
                       lane_axis=hw.layout.lane_axis, sources=[s for s, _, _ in hw.sources],
                       membrane_bits=node.membrane_bits,
                       memories={"state": {"depth": hw.layout.lines * G, "width": P * node.membrane_bits,
                                           "kind": "ram 1R1W"}})
        elif name in plan.glifs:
            row.update(role="scan engine (glif)", lanes=plan.node_lanes[name], groups=plan.groups(name),
                       source=plan.glifs[name], state_bits=node.state_bits)
        elif node.KIND == "output":
            row.update(role="score registers", score_bits=node.score_bits)
        else:
            row["role"] = "wiring"
        if node.KIND == "ttfs_output":
            row.update(role="synapse (one step's current) and ramped score registers (J += I; score += J)",
                       score_bits=node.score_bits, slope_bits=node.slope_bits)
        rows.append(row)
    return rows


def describe_graph(dut, top: str, verilog_sha256: str, interface: str = "stream") -> dict:
    """The JSON description of ``dut``: the graph accelerator (``stream``) or the
    :class:`~snnfpga.rtl.system.AcceleratorSystem` around it (``wishbone``)."""
    plan: GraphTopPlan = dut.plan
    art = plan.artifact
    layout = result_layout(plan)
    nodes = node_entries(plan)
    mem_bits = sum(m["depth"] * m["width"] for n in nodes for m in n.get("memories", {}).values())
    port_rows = ports(dut)
    monitors = []
    if interface == "stream":
        names = ["input", *plan.stage_names[1:]]
        for k, name in enumerate(names):
            shape = [art.n_inputs] if name == "input" else list(art.graph.types[name].shape)
            monitors.append({"port": f"mon{k}", "node": name, "shape": shape})
        for row in port_rows:
            if row["name"].startswith("mon"):
                k = int(row["name"][3:row["name"].index("__")])
                what = "the encoder (pixel index)" if k == 0 else f"node {names[k]}"
                row["meaning"] = f"spike monitor of {what}: {row['name'].split('__')[1]}"
    return {
        **description_header(2, top, verilog_sha256, art),
        "interface": interface,
        "architecture": "layer graph: one engine per node, a static schedule per time step (docs/hardware.md)",
        "parameters": {"lanes": plan.lanes, "pixels_per_beat": plan.pixels_per_beat, "timesteps": art.timesteps,
                       "encoder": art.encoder.to_json(), "n_inputs": art.n_inputs, "n_classes": art.n_classes,
                       "beats_per_image": plan.beats_per_image, "node_lanes": dict(plan.node_lanes),
                       "weight_storage": plan.weight_storage},
        "clocking": {"clock": "clk", "reset": "rst", "reset_kind": "synchronous, active high"},
        "ports": port_rows,
        **({"monitors": monitors} if monitors else {}),
        "stages": [{"counter": f"stage{k}", "node": name, "size": size}
                   for k, (name, size) in enumerate(zip(plan.stage_names, plan.stage_sizes))],
        "result_payload": {
            "cls": {"lsb": layout["cls"].offset, "width": plan.class_bits},
            "scores": [{"class": j, "lsb": layout["scores"].offset + j * plan.score_bits, "width": plan.score_bits,
                        "signed": True} for j in range(art.n_classes)],
        },
        "memory_contents": memory_contents(plan),
        "memory_bits": mem_bits,
        "nodes": nodes,
        "cycle_model": plan.cycle_model.describe(plan),
    }


def write_graph_verilog(plan: GraphTopPlan, out_dir: str | Path, top: str = "snn_top",
                        interface: str = "stream") -> dict:
    """Write ``<top>.v`` and ``<top>.json`` for a graph into ``out_dir``; return the description."""
    check_top_name(top)
    dut = make_top(plan, interface)
    text = to_verilog(dut, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{top}.v").write_text(text)
    description = describe_graph(dut, top, hashlib.sha256(text.encode()).hexdigest(), interface)
    (out / f"{top}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description
