"""Today's configuration beside the fastest one that fits, per shipped model: issue 15's frontier.

For each model, on its target (``default``, ``mixer``, ``mixer-glif``, ``ttfs``: the ECP5-85F;
``tiny``, ``mixer-tiny``, ``ttfs-tiny``: the iCE40 UP5K), two or more configurations:

* ``today``: the target's defaults as they were before issue 15 (chains: 64 lanes and 4
  pixels per beat on the ECP5, 8 lanes and 1 pixel per beat on the UP5K; layer graphs: each
  engine's lanes folded to the block RAM), the same RTL generator;
* the candidates of :data:`CANDIDATES` (chains only: more lanes, up to 512, and wider pixel
  beats); of all that fit, today's included, the one with the least latency (``--synth-only``:
  the fewest cycles) is marked ``best``.

Each configuration is generated, synthesized, placed and routed (:func:`snnfpga.rtl.implement.implement`,
one directory per configuration under ``--out``, reused when nothing changed: a rerun only
does what is missing) and its cycles per image come from the cycle model on ``--images``
validation images (``--sim N``: also measured on Verilator, bit-exact against the reference,
with the streamed interval: images sent back to back, total cycles / images). Prints cycles,
Fmax, latency (one image into an idle accelerator), images/s (latency-bound, and streamed
where measured), LUT, FF and block RAM, and the ratios best / today.

    python benchmarks/frontier.py [--models default tiny ...] [--images 300] [--sim N]
                                  [--seeds S] [--synth-only] [--configs LABEL ...] [--out out/frontier]

A full run synthesizes every configuration: the ECP5 builds take 15-40 minutes each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from snnfpga.commands.synth import target_plan
from snnfpga.errors import MappingError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl import cycle_model
from snnfpga.rtl.implement import Progress, implement
from snnfpga.rtl.targets import get_target
from snnfpga.sim import reference

TARGET_OF = {"default": "ecp5-85k", "tiny": "ice40-up5k", "mixer": "ecp5-85k", "mixer-glif": "ecp5-85k",
             "mixer-tiny": "ice40-up5k", "ttfs": "ecp5-85k", "ttfs-tiny": "ice40-up5k"}
# Chains: (lanes, pixels per beat) tried beside today's defaults, by target.
CANDIDATES = {"ecp5-85k": [(512, 8), (256, 8)], "ice40-up5k": [(8, 4)]}


def configurations(art, target) -> list[tuple[str, dict]]:
    """``(label, target_plan keyword arguments)``: today's first."""
    out = [("today", {})]
    if art.is_chain:
        out += [(f"p{p}_b{b}", {"lanes": p, "pixels_per_beat": b}) for p, b in CANDIDATES[target.name]]
    return out


def measure(art, target, label, kwargs, trace, args, progress) -> dict:
    row = {"config": label}
    try:
        plan = target_plan(art, target, **kwargs)
    except MappingError as error:
        return {**row, "fits": False, "why": str(error)}
    cycles = plan.cycle_model.cycles_per_image(plan, trace)
    row.update(lanes=getattr(plan, "lanes", None) or kwargs.get("lanes"), pixels_per_beat=plan.pixels_per_beat,
               cycles=float(np.mean(cycles)))
    result = implement(plan, target, Path(args.out) / art.name / target.name / label, seeds=args.seeds,
                       progress=progress, place_and_route=not args.synth_only)
    row.update(fits=result["fits"], fmax_mhz=result.get("fmax_mhz"), luts=result.get("luts"), ffs=result.get("ffs"),
               bram=result.get("brams"), dsps=result.get("dsps"), multipliers=result.get("multipliers"),
               why="; ".join(result.get("fit_problems") or []))
    row.update(cycle_model.at_clock(row["cycles"], row["fmax_mhz"]))
    if args.sim and result["fits"]:
        from snnfpga.sim import cocotb_sim

        images = load_dataset(args.data).split("val").limit(args.sim).images
        run = cocotb_sim.simulate(plan, images, simulator="verilator", gaps=0.0, stall=0.0)
        if not run.passed:
            raise SystemExit(f"{art.name} {label}: RTL differs from the reference: {run.first_problem()}")
        row.update(sim_cycles=float(run.cycles.mean()), interval=run.total_cycles / run.n)
        if row["fmax_mhz"]:
            row["streamed_images_per_s"] = round(row["fmax_mhz"] * 1e6 / row["interval"], 1)
    return row


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(TARGET_OF), choices=tuple(TARGET_OF))
    p.add_argument("--data", default="default")
    p.add_argument("--images", type=int, default=300, help="validation images for the cycle model (default 300)")
    p.add_argument("--sim", type=int, default=0, metavar="N", help="also measure N images on Verilator")
    p.add_argument("--seeds", type=int, help="placement seeds (default: the target's)")
    p.add_argument("--synth-only", action="store_true", help="no place and route: no Fmax, no latency")
    p.add_argument("--configs", nargs="+", metavar="LABEL",
                   help="only these configurations (today, p512_b8, ...; default: all)")
    p.add_argument("--out", default="out/frontier")
    args = p.parse_args(argv)
    progress = Progress("frontier")
    columns = ("config", "lanes", "pixels_per_beat", "cycles", "sim_cycles", "interval", "fmax_mhz", "latency_us",
               "images_per_s", "streamed_images_per_s", "luts", "ffs", "bram", "dsps", "fits")
    for name in args.models:
        art = load_artifact(name)
        target = get_target(TARGET_OF[name])
        images = load_dataset(args.data).split("val").limit(args.images).require_input_shape(art.input_shape).images
        trace = reference.run(art, images)
        rows = [measure(art, target, label, kwargs, trace, args, progress)
                for label, kwargs in configurations(art, target)
                if label == "today" or not args.configs or label in args.configs]
        fitting = [r for r in rows if r.get("fits") and r.get("latency_us" if not args.synth_only else "cycles")]
        best = min(fitting, key=lambda r: r["latency_us"] if not args.synth_only else r["cycles"],
                   default=rows[0])
        print(f"\n{name} on {target.name} ({len(images)} validation images; best: {best['config']})")
        print(" ".join(f"{c:>12}" for c in columns))
        for r in rows:
            print(" ".join(f"{_fmt(r.get(c)):>12}" for c in columns) + ("" if r.get("fits", True) else
                                                                          f"  ({r.get('why')})"))
        today = rows[0]
        ratios = []
        for c in ("cycles", "fmax_mhz", "latency_us", "images_per_s", "luts", "ffs", "bram"):
            if isinstance(today.get(c), (int, float)) and today[c] and isinstance(best.get(c), (int, float)):
                ratios.append(f"{c} {best[c] / today[c]:.2f}")
        print(f"best / today: {', '.join(ratios) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
