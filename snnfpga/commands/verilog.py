"""``snnfpga verilog MODEL --out DIR [--lanes P] [--top NAME]``: generate the accelerator.

Writes ``DIR/<top>.v`` (the Verilog), ``DIR/<top>.json`` (its description) and
``DIR/<top>.core`` (a FuseSoC CAPI2 core of both, :mod:`snnfpga.rtl.fusesoc`), for a chain
and for a layer graph alike.
"""

from __future__ import annotations

import argparse

from snnfpga.commands.common import emit_json, lanes_option, positive_int
from snnfpga.errors import ConfigError
from snnfpga.model.artifact import load_artifact
from snnfpga.rtl.fusesoc import core_name, write_core
from snnfpga.rtl.generate import check_top_name, write_verilog
from snnfpga.rtl.graph_top import DEFAULT_LANES as DEFAULT_GRAPH_LANES  # docs/hardware.md, "Layer graphs"
from snnfpga.rtl.plan import make_plan

DEFAULT_LANES = 64  # the ECP5 configuration: <= 5,000 cycles per image for the default model
FOLD_TARGET = "ecp5-85k"  # what --lanes auto folds a layer graph for in commands without --target


def top_name(text: str) -> str:
    """argparse type: a Verilog identifier."""
    try:
        return check_top_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_hardware_options(parser, lanes_default=DEFAULT_LANES):
    """Options shared by every command that generates hardware."""
    parser.add_argument("--lanes", type=lanes_option, default=None,
                        help=f"parallel lanes P per layer (default {lanes_default}; {DEFAULT_GRAPH_LANES} for a layer "
                             f"graph, or auto: each engine's lanes folded to the {FOLD_TARGET}'s block RAM)")
    parser.add_argument("--pixels-per-beat", type=positive_int, default=4, choices=(1, 2, 4, 8),
                        help="pixels per input stream beat (default 4: 32-bit beats)")
    parser.add_argument("--fifo-depth", type=positive_int, default=16,
                        help="depth of the spike-token FIFOs between stages (default 16)")
    parser.add_argument("--weights", choices=("rom", "ram"), default="rom",
                        help="weight storage: rom (contents in the bitstream, default) or ram "
                             "(written at run time; lets iCE40 use SPRAM)")


def plan_from_args(args, lanes_default=DEFAULT_LANES):
    """The chain plan of ``args.model`` (a layer graph is refused in one line)."""
    if args.lanes == "auto":
        raise ConfigError(f"{args.model} is a chain: --lanes auto folds the engines of a layer graph; "
                          f"give --lanes P (default {lanes_default})")
    return make_plan(load_artifact(args.model), lanes=args.lanes or lanes_default,
                     pixels_per_beat=args.pixels_per_beat, fifo_depth=args.fifo_depth, weight_storage=args.weights)


def hardware_plan_from_args(args, lanes_default=DEFAULT_LANES):
    """The chain plan, or for a layer graph the graph accelerator's plan (``--weights ram``:
    every synapse's weights loaded at run time)."""
    from snnfpga.rtl.graph_top import make_graph_top_plan

    art = load_artifact(args.model)
    if art.is_chain:
        return plan_from_args(args, lanes_default)
    if args.lanes == "auto":
        from snnfpga.commands.synth import target_plan
        from snnfpga.rtl.targets import get_target

        return target_plan(art, get_target(FOLD_TARGET), "auto", args.weights, args.pixels_per_beat)
    return make_graph_top_plan(art, lanes=args.lanes or DEFAULT_GRAPH_LANES, pixels_per_beat=args.pixels_per_beat,
                               weight_storage=args.weights)


def add_parser(sub):
    p = sub.add_parser("verilog", help="generate deterministic Verilog, its JSON description and a FuseSoC core",
                       description="Generate the multiplication-free accelerator for MODEL as Verilog "
                                   "(memory contents inside) plus a JSON description of ports, "
                                   "parameters, widths and the cycle model, and a FuseSoC core file "
                                   "(<top>.core) of both.")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default'")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--top", default="snn_top", type=top_name, help="top module name (default snn_top)")
    p.add_argument("--interface", choices=("stream", "wishbone"), default="stream",
                   help="top level: stream (valid/ready pixel and result streams, spike monitors; default) "
                        "or wishbone (register block + accelerator, see docs/registers.md)")
    p.add_argument("--json", action="store_true", help="print one JSON summary line")
    add_hardware_options(p)
    p.set_defaults(func=run)


def add_core(summary: dict, description: dict, out: str) -> None:
    """Write the FuseSoC core of the files just written; record it in ``summary``."""
    summary["core_file"] = f"{out}/{write_core(description, out)}"
    summary["core_name"] = core_name(description)


def print_core(summary: dict) -> None:
    print(f"  FuseSoC core {summary['core_name']}: {summary['core_file']}")


def run_graph(args) -> int:
    """A layer graph: the graph accelerator (rtl/graph_top.py), ROM weights."""
    plan = hardware_plan_from_args(args)
    description = write_verilog(plan, args.out, args.top, args.interface)
    engines = [n for n in description["nodes"] if n["role"] != "wiring"]
    summary = {
        "top": args.top,
        "files": [f"{args.out}/{f}" for f in description["files"]] + [f"{args.out}/{args.top}.json"],
        "interface": args.interface,
        "lanes": plan.lanes,
        "nodes": len(description["nodes"]),
        "engines": len(engines),
        "memory_bits": description["memory_bits"],
    }
    add_core(summary, description, args.out)
    if args.json:
        emit_json(summary)
    else:
        print(f"wrote {', '.join(summary['files'])}")
        for n in engines:
            lanes = f", {n['lanes']} lanes x {n['groups']} groups" if "lanes" in n else ""
            print(f"  {n['name']:<16} {n['kind']:<10} {n['role']}{lanes}")
        print(f"  memories: {description['memory_bits']} bits")
        print_core(summary)
    return 0


def run(args) -> int:
    if not load_artifact(args.model).is_chain:
        return run_graph(args)
    plan = plan_from_args(args)
    description = write_verilog(plan, args.out, args.top, args.interface)
    summary = {
        "top": args.top,
        "files": [f"{args.out}/{f}" for f in description["files"]] + [f"{args.out}/{args.top}.json"],
        "interface": args.interface,
        "lanes": plan.lanes,
        "groups": [lp.groups for lp in plan.layers],
        "memory_bits": description["memory_bits"],
    }
    add_core(summary, description, args.out)
    if args.json:
        emit_json(summary)
    else:
        print(f"wrote {', '.join(summary['files'])}")
        for entry in description["layers"]:
            print(f"  layer {entry['index']} ({entry['kind']}): {entry['n_in']}->{entry['n_out']}, "
                  f"{entry['lanes']} lanes x {entry['groups']} groups, state {entry['state_bits']} bits")
        print(f"  memories: {description['memory_bits']} bits")
        print_core(summary)
    return 0
