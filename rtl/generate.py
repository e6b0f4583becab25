"""Verilog generation: artifact -> ``<top>.v`` + ``<top>.json`` (deterministic).

The Verilog is one self-contained file (Amaranth 0.5 through Yosys' ``write_verilog``):
memory contents are ``initial`` blocks inside it, so no ``$readmemh`` files travel with
it. ``emit_src=False`` keeps source paths out; nothing depends on time or on the machine,
so the same artifact and options give the same bytes.

The JSON description lists every port (name, direction, width, meaning), the payload bit
layout of the result stream, the parameters and widths of each layer, the memories, and
the cycle model (:mod:`snnfpga.rtl.cycle_model`).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib.metadata import version
from pathlib import Path

from amaranth._toolchain.yosys import find_yosys  # the Yosys that Amaranth's own convert() uses
from amaranth.back import rtlil, verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from snnfpga import __version__
from snnfpga.errors import ConfigError
from snnfpga.model.artifact import Artifact, arrays_sha256
from snnfpga.rtl import cycle_model
from snnfpga.rtl.decision import result_layout
from snnfpga.rtl.plan import Plan
from snnfpga.rtl.system import AcceleratorSystem

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DESCRIPTION_FORMAT = "snnfpga.verilog"

PORT_MEANINGS = {
    "clk": "clock (all logic is in this one domain)",
    "rst": "synchronous reset, active high",
    "soft_reset": "synchronous reset of all state, active high (abandons an image in flight)",
    "pixels__payload": "pixel beat: pixel k of the beat in bits [8k, 8k+8)",
    "pixels__valid": "pixel beat valid",
    "pixels__ready": "pixel beat accepted (with valid)",
    "result__payload": "result: class in the low bits, then the signed scores (see result_payload)",
    "result__valid": "result valid; held with its payload until ready",
    "result__ready": "result accepted (with valid)",
    "counters__cycles": "cycles of the last image: first beat accepted to result valid",
    "counters__images": "results delivered since reset",
    "counters__spikes": "spikes of the last image per stage, 32 bits each (stage 0 = encoder)",
    "irq": "result available and interrupt enabled (STATUS.DONE & IRQ_ENABLE)",
    "weights__payload": "weight word write: data, then addr, then layer (see the layout below)",
    "weights__valid": "write the weight word (only while no image is in flight)",
    "weights__ready": "always 1",
}


def check_top_name(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ConfigError(f"top module name {name!r} is not a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


INTERFACES = ("stream", "wishbone")


def make_top(plan: Plan, interface: str = "stream"):
    """The top-level component: the plan's streaming accelerator or the Wishbone
    :class:`~snnfpga.rtl.system.AcceleratorSystem` (register block + accelerator)."""
    if interface == "stream":
        return plan.accelerator()
    if interface == "wishbone":
        return AcceleratorSystem(plan)
    raise ConfigError(f"interface must be one of {', '.join(INTERFACES)}, got {interface!r}")


def to_verilog(dut, top: str = "snn_top") -> str:
    """The Verilog text of the accelerator.

    ROM weights: exactly ``amaranth.back.verilog.convert``. RAM weights (loaded at run time):
    the same Yosys steps with the weight memories' initial contents dropped before
    ``memory_collect``, so that the Verilog declares them without an ``initial`` block (their
    contents are undefined until loaded, and synthesis may map them to SPRAM).
    """
    check_top_name(top)
    if dut.plan.weight_storage == "rom":
        return verilog.convert(dut, name=top, emit_src=False)
    rtlil_text = rtlil.convert(dut, name=top, emit_src=False)
    script = [f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil", "proc -nomux -norom",
              r"delete t:$meminit_v2 r:MEMID=\weights %i", "memory_collect", "write_verilog -norename"]
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def weight_memory_kind(plan) -> str:
    """How a plan's weight memories are described (``rom``, or RAM written at run time)."""
    return "rom" if plan.weight_storage == "rom" else "ram, single port, loaded at run time"


def memory_contents(plan) -> str:
    """Where the memory contents are (the description's ``memory_contents``)."""
    return "inside the Verilog as initial blocks (no $readmemh files)" + (
        "; weight memories have none: they are written at run time" if plan.weight_storage == "ram" else "")


def ports(dut) -> list[dict]:
    """Top-level ports in a stable order: clock and reset first, then the signature's members."""
    rows = [{"name": "clk", "direction": "input", "width": 1, "meaning": PORT_MEANINGS["clk"]},
            {"name": "rst", "direction": "input", "width": 1, "meaning": PORT_MEANINGS["rst"]}]
    for path, member, value in dut.signature.flatten(dut):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        meaning = PORT_MEANINGS.get(name)
        if meaning is None and name.startswith("bus__"):
            meaning = f"Wishbone B4 classic slave: {name[5:]} (see docs/registers.md)"
        if meaning is None and name.startswith("mon"):
            stage = int(name[3:name.index("__")])
            what = "encoder" if stage == 0 else f"hidden layer {stage}"
            meaning = f"spike monitor of the {what}: {name.split('__')[1]}"
        rows.append({"name": name, "direction": direction, "width": len(Value.cast(value)), "meaning": meaning})
    return rows


def description_header(version_: int, top: str, verilog_sha256: str, art: Artifact) -> dict:
    """The first keys of every JSON description: format, version, files, generator, artifact."""
    return {
        "format": DESCRIPTION_FORMAT,
        "version": version_,
        "top": top,
        "files": [f"{top}.v"],
        "verilog_sha256": verilog_sha256,
        "generator": {"snnfpga": __version__, "amaranth": version("amaranth")},
        "artifact": {"name": art.name, "arrays_sha256": arrays_sha256(art)},
    }


def describe(dut, top: str, verilog_sha256: str) -> dict:
    """The JSON description written beside the Verilog."""
    plan = dut.plan
    art = plan.artifact
    layout = result_layout(plan)
    scores_offset = layout["scores"].offset
    layers = []
    for lp in plan.layers:
        layer = lp.layer
        entry = {"index": lp.index, "name": layer.name, "kind": layer.kind, "n_in": layer.n_in,
                 "n_out": layer.n_out, "lanes": lp.lanes, "groups": lp.groups,
                 "weight_bits": layer.weight_bits, "bias_bits": layer.bias_bits,
                 "current_bits": layer.current_bits, "state_bits": lp.state_bits}
        if layer.spiking:
            entry.update(membrane_bits=layer.membrane_bits, threshold_bits=layer.threshold_bits,
                         leak_shift=layer.leak_shift, reset=layer.reset, fire=layer.fire)
            if layer.leak_shift2 is not None:
                entry["leak_shift2"] = layer.leak_shift2
        if layer.is_output:
            entry["score_bits"] = layer.score_bits
        param_bits = layer.bias_bits + (layer.threshold_bits if layer.spiking else 0)
        entry["memories"] = {
            "weights": {"depth": lp.weight_depth, "width": lp.weight_word_bits,
                        "kind": weight_memory_kind(plan),
                        "address": "{input index, group}" if lp.group_bits else "input index",
                        "banks": lp.weight_banks},
            "state": {"depth": lp.groups, "width": lp.lanes * lp.state_bits, "kind": "ram 1R1W"},
            "params": {"depth": lp.groups, "width": lp.lanes * param_bits, "kind": "rom"},
        }
        layers.append(entry)
    mem_bits = sum(m["depth"] * m["width"] for e in layers for m in e["memories"].values())
    mem_bits += 2 * plan.beats_per_image * 8 * plan.pixels_per_beat
    return {
        **description_header(1, top, verilog_sha256, art),
        "interface": "wishbone" if isinstance(dut, AcceleratorSystem) else "stream",
        "parameters": {"lanes": plan.lanes, "pixels_per_beat": plan.pixels_per_beat,
                       "weight_storage": plan.weight_storage,
                       "fifo_depth": plan.fifo_depth, "timesteps": art.timesteps,
                       "encoder": art.encoder.to_json(), "n_inputs": art.n_inputs,
                       "n_classes": art.n_classes, "beats_per_image": plan.beats_per_image},
        "clocking": {"clock": "clk", "reset": "rst", "reset_kind": "synchronous, active high"},
        "ports": ports(dut),
        "result_payload": {
            "cls": {"lsb": layout["cls"].offset, "width": plan.class_bits},
            "scores": [{"class": j, "lsb": scores_offset + j * plan.score_bits, "width": plan.score_bits,
                        "signed": True} for j in range(art.n_classes)],
        },
        "memory_contents": memory_contents(plan),
        "memory_bits": mem_bits,
        "layers": layers,
        "cycle_model": cycle_model.describe(plan),
    }


def write_verilog(plan: Plan, out_dir: str | Path, top: str = "snn_top", interface: str = "stream") -> dict:
    """Write ``<top>.v`` and ``<top>.json`` into ``out_dir``; return the description (a layer
    graph's plan: :func:`snnfpga.rtl.graph_generate.write_graph_verilog`)."""
    if plan.is_graph:
        from snnfpga.rtl.graph_generate import write_graph_verilog

        return write_graph_verilog(plan, out_dir, top, interface)
    dut = make_top(plan, interface)
    text = to_verilog(dut, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{top}.v").write_text(text)
    description = describe(dut, top, hashlib.sha256(text.encode()).hexdigest())
    (out / f"{top}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def artifact_summary(art: Artifact) -> str:
    return f"{art.name}: " + "-".join(str(n) for n in art.sizes) + f", T={art.timesteps}"
