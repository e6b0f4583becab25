"""``snnfpga synth``: synthesize, place and route the accelerator for an FPGA target.

    snnfpga synth MODEL --target ice40-up5k|ecp5-85k [--lanes P|auto] [--weights rom|ram]
                  [--pixels-per-beat B] [--clock MHZ] [--seeds N] [--scheduler SPEC] [--data FILE] [--out DIR]
                  [--force] [--json]

The design is the SPI board shell (docs/implementation.md) around the accelerator system;
Yosys and nextpnr come from PyPI (YoWASP). Prints logic cells or LUTs, flip-flops, block
RAMs by kind, DSPs, multiplier cells, Fmax (MHz) and whether the design fits; with the
cycle model on the data's validation images, also cycles per image and the latency at
Fmax (microseconds). Files go to ``DIR/<target>/`` (default ``out/synth``); a previous
identical run there is reused unless ``--force``. Progress goes to standard error. The
placement seeds run two at a time here, or with ``--scheduler`` as jobs of a Dask cluster
(docs/scale-out.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from snnfpga.commands.common import clock_mhz, emit_json, lanes_option, positive_int
from snnfpga.errors import ConfigError, MappingError

DEFAULT_OUT = "out/synth"
DESCRIPTION = __doc__.split("\n\n")[0]


def add_target_options(p, *, required: bool = True) -> None:
    """Target and per-target hardware overrides (defaults in rtl/targets.py)."""
    from snnfpga.rtl.targets import TARGETS

    p.add_argument("--target", required=required, metavar="NAME", choices=tuple(TARGETS),
                   help="FPGA target: " + ", ".join(f"{t.name} ({t.device})" for t in TARGETS.values()))
    p.add_argument("--lanes", type=lanes_option, metavar="P",
                   help="parallel lanes, or auto: the fastest configuration that fits (a chain: a search over "
                        "lane counts; a layer graph: each engine's lanes folded to the ECP5's block RAM, 4 on "
                        "the iCE40 UP5K, whose logic cells bind first). Default: the target's; a graph: auto")
    p.add_argument("--weights", choices=("rom", "ram"), help="weight storage (default: the target's)")
    p.add_argument("--pixels-per-beat", type=positive_int, choices=(1, 2, 4, 8),
                   help="pixels per accelerator input beat (default: the target's)")
    p.add_argument("--clock", type=clock_mhz, metavar="MHZ",
                   help="clock constraint for nextpnr in MHz (default: the target's)")
    p.add_argument("--seeds", type=positive_int, metavar="N",
                   help="placement seeds to try, the best Fmax kept (default: the target's, 3)")


def add_parser(subparsers) -> None:
    from snnfpga.executor import SCHEDULER_HELP

    p = subparsers.add_parser("synth", description=DESCRIPTION,
                              help="synthesis, place and route (Yosys, nextpnr): resources, Fmax, fit")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default' / 'tiny'")
    add_target_options(p)
    p.add_argument("--scheduler", metavar="SPEC",
                   help="where the placement seeds run: " + SCHEDULER_HELP.split(": ", 1)[1])
    p.add_argument("--data", default="default", metavar="FILE",
                   help="images for the cycle model (validation split; default: the bundled data)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--force", action="store_true", help="run the tools even if an identical result is there")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def plan_for_target(model: str, target, lanes=None, weights=None, pixels_per_beat=None):
    """The generation plan of ``model`` (a directory or a shipped name) for ``target``."""
    from snnfpga.model.artifact import load_artifact

    return target_plan(load_artifact(model), target, lanes, weights, pixels_per_beat)


def target_plan(art, target, lanes=None, weights=None, pixels_per_beat=None):
    """The generation plan of artifact ``art`` with the target's defaults unless overridden (a
    layer graph: the graph accelerator, and unless ``lanes`` is a number each engine's lanes
    folded to the target's block RAM, rtl/graph_fold.py, or the target's ``graph_lanes``
    where its logic cells bind first: the iCE40)."""
    from snnfpga.rtl.graph_fold import fold_for
    from snnfpga.rtl.graph_top import DEFAULT_LANES, make_graph_top_plan
    from snnfpga.rtl.plan import make_plan

    ppb = pixels_per_beat or target.pixels_per_beat
    if not art.is_chain:
        weight_storage = weights or target.weight_storage
        if lanes in (None, "auto") and target.graph_lanes:
            lanes = target.graph_lanes
        if lanes not in (None, "auto"):
            return make_graph_top_plan(art, lanes=lanes, pixels_per_beat=ppb, weight_storage=weight_storage)
        make_graph_top_plan(art, weight_storage=weight_storage)  # refusals before the fold's work
        return make_graph_top_plan(art, lanes=DEFAULT_LANES, pixels_per_beat=ppb, weight_storage=weight_storage,
                                   lane_caps=fold_for(art, target))
    if lanes == "auto":
        raise ConfigError(f"{art.name} is a chain: --lanes auto is a search over lane counts that only "
                          f"snnfpga synth runs; give --lanes P (default: the target's, {target.lanes})")
    return make_plan(art, lanes=lanes or target.lanes, pixels_per_beat=ppb,
                     weight_storage=weights or target.weight_storage, rom_bank_depth=target.rom_bank_depth)


def cycles_estimate(plan, data: str | None, limit: int = 1000) -> dict | None:
    """Mean cycles per image from the plan's cycle model on the data's validation split
    (None when the data does not match the model's input shape)."""
    from snnfpga.model.data import load_dataset
    from snnfpga.sim import reference

    if data is None:
        return None
    images = load_dataset(data).split("val").limit(limit).images
    if tuple(images.shape[1:]) != plan.artifact.input_shape:
        return None
    cycles = plan.cycle_model.cycles_per_image(plan, reference.run(plan.artifact, images))
    return {"cycles_per_image": round(float(cycles.mean()), 1), "cycles_max": int(cycles.max()),
            "cycles_source": f"cycle model, {len(images)} validation images"}


def chain_lane_candidates(art, target) -> list[int]:
    """Lane counts ``--lanes auto`` tries for a chain: powers of two from 1 up to the widest
    layer (more lanes than neurons change nothing), that layer's width itself, at most
    :data:`~snnfpga.rtl.plan.MAX_LANES`."""
    from snnfpga.rtl.plan import MAX_LANES

    widest = min(max(layer.n_out for layer in art.layers), MAX_LANES)
    return sorted({1 << k for k in range(widest.bit_length()) if 1 << k <= widest} | {widest})


AUTO_ROUTED = 2  # --lanes auto: the fastest fitting candidates (cycle model) that are placed and routed


def auto_lanes(model, target, out: Path, *, weights, pixels_per_beat, clock, seeds, data, force, progress,
               executor=None) -> dict:
    """``--lanes auto`` for a chain: the fastest configuration that fits (see docs/implementation.md).

    Every candidate lane count (:func:`chain_lane_candidates`) gets the cycle model; from the
    fewest cycles down, candidates are synthesized until :data:`AUTO_ROUTED` fit; those are
    placed and routed (reusing their synthesis) and the least latency (cycles / Fmax) wins
    (ties: fewer logic cells). Returns ``(result, plan, directory)`` of the winner; the
    result's ``auto`` lists every candidate tried."""
    from snnfpga.model.artifact import load_artifact
    from snnfpga.rtl import cycle_model
    from snnfpga.rtl.implement import implement

    art = load_artifact(model)
    rows = []
    for lanes in chain_lane_candidates(art, target):
        plan = target_plan(art, target, lanes, weights, pixels_per_beat)
        cycles = cycles_estimate(plan, data or "default")
        rows.append({"lanes": lanes, "plan": plan, "cycles_per_image": cycles["cycles_per_image"]})
    rows.sort(key=lambda r: (r["cycles_per_image"], r["lanes"]))
    routed = []
    for row in rows:
        if len(routed) == AUTO_ROUTED:
            break
        directory = out / target.name / f"p{row['lanes']}"
        progress.say(f"auto: {row['lanes']} lanes, {row['cycles_per_image']:,.0f} cycles/image: synthesis")
        synth = implement(row["plan"], target, directory, clock_mhz=clock, seeds=seeds, progress=progress,
                          reuse=not force, place_and_route=False)
        row["fits"] = synth["fits"]
        if not synth["fits"]:
            row["why"] = "; ".join(synth["fit_problems"])
            continue
        result = implement(row["plan"], target, directory, clock_mhz=clock, seeds=seeds, progress=progress,
                           reuse=not force, executor=executor)
        row["fits"] = result["fits"]
        if result["fits"]:
            row.update(fmax_mhz=result["fmax_mhz"], **cycle_model.at_clock(row["cycles_per_image"], result["fmax_mhz"]))
            routed.append((row, result, directory))
        else:
            row["why"] = "; ".join(result["fit_problems"])
    if not routed:
        tried = ", ".join(f"{r['lanes']} ({r['why']})" for r in rows if "why" in r)
        raise MappingError(f"{art.name} fits the {target.name} at no lane count tried: {tried}")
    row, result, directory = min(routed, key=lambda x: (x[0]["latency_us"] or float("inf"), x[1]["logic_cells"]))
    result["auto"] = [{k: v for k, v in r.items() if k != "plan"} for r in rows if "fits" in r]
    result["auto_best_lanes"] = row["lanes"]
    return result, row["plan"], directory


def synthesize(model: str, target_name: str, out: str | Path, *, lanes=None, weights=None, pixels_per_beat=None,
               clock=None, seeds=None, data="default", force=False, quiet=False, scheduler=None) -> dict:
    """Run the flow (see :func:`snnfpga.rtl.implement.implement`) and add the cycle model's
    latency at Fmax. Returns the result dict (log paths absolute). ``lanes="auto"``: a layer
    graph folded to the target (:func:`target_plan`), a chain searched (:func:`auto_lanes`).
    ``scheduler``: a Dask scheduler spec (:func:`snnfpga.executor.get_executor`) for the
    placement seeds; without one (and no ``$SNNFPGA_SCHEDULER``) they run two at a time here."""
    from contextlib import nullcontext

    from snnfpga.executor import get_executor, uses_cluster

    with get_executor(scheduler, workers=seeds or 1) if uses_cluster(scheduler) else nullcontext() as executor:
        return _synthesize(model, target_name, out, lanes=lanes, weights=weights, pixels_per_beat=pixels_per_beat,
                           clock=clock, seeds=seeds, data=data, force=force, quiet=quiet, executor=executor)


def _synthesize(model, target_name, out, *, lanes, weights, pixels_per_beat, clock, seeds, data, force, quiet,
                executor) -> dict:
    from snnfpga.model.artifact import load_artifact
    from snnfpga.rtl import cycle_model
    from snnfpga.rtl.implement import Progress, implement
    from snnfpga.rtl.targets import get_target

    target = get_target(target_name)
    progress = Progress("synth " + target.name, enabled=not quiet)
    if lanes == "auto" and load_artifact(model).is_chain:
        result, plan, directory = auto_lanes(model, target, Path(out), weights=weights,
                                             pixels_per_beat=pixels_per_beat, clock=clock, seeds=seeds, data=data,
                                             force=force, progress=progress, executor=executor)
    else:
        plan = plan_for_target(model, target, lanes, weights, pixels_per_beat)
        directory = Path(out) / target.name
        result = implement(plan, target, directory, clock_mhz=clock, seeds=seeds, progress=progress,
                           reuse=not force, executor=executor)
    cycles = cycles_estimate(plan, data)
    if cycles:
        result.update(cycles)
        if result.get("fmax_mhz"):
            result.update(cycle_model.at_clock(cycles["cycles_per_image"], result["fmax_mhz"]))
    result["out"] = str(directory.resolve())
    result["yosys_log"] = str((directory / "yosys.log").resolve())
    if result.get("pnr_log"):
        result["pnr_log"] = str((directory / "pnr.log").resolve())
    return result


def format_result(r: dict) -> list[str]:
    """Human-readable lines for one result."""
    cap = r.get("capacity", {})

    def of(key, used):
        return f"{used:,}" + (f" / {cap[key]:,}" if key in cap else "")

    lines = [f"{r['target']} ({r['device']}, package {r['package']}, speed {r['speed']}): "
             f"{r['model']} {'-'.join(map(str, r['sizes'])) if r.get('sizes') else '(layer graph)'}, "
             f"{r.get('lanes_label') or str(r['lanes']) + ' lanes'}, weights {r['weight_storage']}"
             + (" (cached)" if r.get("cached") else "")]
    if r["target"].startswith("ice40"):
        lines.append(f"  logic cells      {of('logic_cells', r['logic_cells'])}"
                     f"   (LUT4 {r['luts']:,}, flip-flops {r['ffs']:,})")
        lines.append(f"  block RAM        EBR {of('ebr', r['ebr'])}, SPRAM {of('spram', r['spram'])}")
    else:
        lines.append(f"  LUT4             {of('luts', r['luts'])}   (flip-flops {r['ffs']:,})")
        lines.append(f"  block RAM        DP16KD {of('dp16kd', r['dp16kd'])}")
    lines.append(f"  DSPs             {r['dsps']}    multiplier cells {r['multipliers']}")
    if r["fits"]:
        meets = "meets" if r.get("meets_clock") else "misses"
        seeds = r.get("fmax_by_seed") or {}
        tried = f"; best of seeds {', '.join(f'{s}: {f:.1f}' for s, f in seeds.items())}" if len(seeds) > 1 else ""
        lines.append(f"  Fmax             {r['fmax_mhz']:.1f} MHz ({meets} the {r['clock_mhz']:g} MHz constraint{tried})")
        cp = r.get("critical_path")
        if cp:
            lines.append(f"  critical path    {cp['delay_ns']:.2f} ns ({cp['logic_levels']} logic levels, "
                         f"{cp['routing_ns']:.2f} ns routing): {cp['from']} -> {cp['to']}")
    else:
        lines.append("  fits             NO: " + "; ".join(r["fit_problems"]) + f" (resources from {r['resources_from']})")
    if r.get("cycles_per_image"):
        lat = f", {r['latency_us']:.1f} us per image at Fmax, {r['images_per_s']:,.0f} images/s" \
            if r.get("latency_us") else ""
        lines.append(f"  cycles/image     {r['cycles_per_image']:,.0f} ({r['cycles_source']}){lat}")
    for row in r.get("auto") or ():
        mark = "  <- chosen" if row["lanes"] == r.get("auto_best_lanes") else ""
        what = (f"Fmax {row['fmax_mhz']:.1f} MHz, {row['latency_us']:.1f} us" if row.get("latency_us")
                else f"does not fit: {row.get('why', '')}")
        lines.append(f"  auto {row['lanes']:>4} lanes {row['cycles_per_image']:>9,.0f} cycles  {what}{mark}")
    lines.append(f"  files            {r['out']}  ({r['wall_s']:.0f} s)")
    return lines


def run(args) -> int:
    result = synthesize(args.model, args.target, args.out, lanes=args.lanes, weights=args.weights,
                        pixels_per_beat=args.pixels_per_beat, clock=args.clock, seeds=args.seeds, data=args.data,
                        force=args.force, scheduler=args.scheduler)
    print("\n".join(format_result(result)))
    if not result["fits"] and result.get("graph"):
        print(f"note: the graph accelerator of {result['model']} does not fit the {result['target']} at "
              f"{result.get('lanes_label') or result['lanes']} (one engine per node; fewer lanes, --lanes P, "
              "need less logic; see docs/hardware.md, \"Layer graphs\")", file=sys.stderr)
    elif not result["fits"]:
        print(f"note: {result['model']} does not fit the {result['target']}; see docs/implementation.md for the "
              "preset that does (snnfpga synth tiny --target ice40-up5k)", file=sys.stderr)
    if args.json:
        emit_json({k: v for k, v in result.items() if k not in ("synth_cells", "key", "capacity", "pins")})
    return 0
