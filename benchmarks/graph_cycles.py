"""Planned cycles per image of the layer-graph hardware against lanes, per shipped preset.

    python benchmarks/graph_cycles.py [--images N] [--lanes 8,16,32,64,128] [--rtl M] [PRESET ...]

A planning estimate from :func:`snnfpga.rtl.graph_plan.estimate` on reference activity of
the first ``N`` validation images: the graph generator is not built yet, so these are the
figures the design is aimed at, not measurements. For each preset and lane count: cycles
per image in the schedule of its target (``pipelined`` on the ECP5-85F: one engine per
neuron, buffer and scan node; ``shared`` on the iCE40 UP5K: one engine, memories pooled,
two cycles per state update because SPRAM has one port), the share of those cycles spent
integrating, in neuron passes and waiting (pipelined: the busiest engine's own integrate and
neuron cycles, the rest it waits), microseconds at the target's clock, and whether its
memories fit the target (blocks used, or the refusal).

``--rtl M`` also runs the generated graph accelerator (rtl/graph_top.py, 8 lanes) on the
first ``M`` validation images on Verilator and prints its measured cycles per image, its
verdict against the reference, and the microseconds at the target clock.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

TARGET_OF = {"mixer": "ecp5-85k", "mixer-glif": "ecp5-85k", "mixer-tiny": "ice40-up5k"}
LATENCY_TARGET_US = {"mixer": 300.0, "mixer-tiny": 2000.0}
CLOCK_TARGET_MHZ = {"ecp5-85k": 100.0, "ice40-up5k": 30.0}


def main(argv=None) -> int:
    from snnfpga.errors import MappingError
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.rtl import graph_plan
    from snnfpga.rtl.targets import get_target
    from snnfpga.sim import reference

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("presets", nargs="*", default=list(TARGET_OF))
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--lanes", default="8,16,32,64,128")
    p.add_argument("--rtl", type=int, default=0, metavar="M", help="also simulate M images of the RTL (Verilator)")
    args = p.parse_args(argv)
    lanes = [int(x) for x in args.lanes.split(",")]
    images = load_dataset("default").split("val").images[:args.images]
    for name in args.presets:
        art = load_artifact(name)
        target = get_target(TARGET_OF.get(name, "ecp5-85k"))
        mhz = CLOCK_TARGET_MHZ[target.name]
        trace = reference.run(art, images, record="all")
        mode = graph_plan.schedule(target)
        print(f"\n{name} on {target.name} ({mode} schedule, {mhz:g} MHz), {len(images)} validation images, "
              f"{int(reference.synaptic_ops(art, trace).mean()):,} synaptic ops/image")
        print(f"{'lanes':>5} {'cycles':>9} {'us':>8} {'integrate':>9} {'neuron':>7} {'waiting':>7}  "
              f"{'bottleneck':<16} memory")
        best = None
        for P in lanes:
            plan = graph_plan.make_graph_plan(art, P)
            est = graph_plan.estimate(plan, trace.outputs, trace.spikes[0], target.pixels_per_beat)
            try:
                used = graph_plan.check_fits(plan, target)
                fit = ", ".join(f"{v} {k.upper()}" for k, v in sorted(used.items()))
                fits = True
            except MappingError as e:
                fit, fits = f"does not fit: {e}", False
            if mode == "shared":
                rmw = 2 if any("spram" in u for k, u in graph_plan.memory_map(plan, target).items()
                               if k == "(state)") else 1
                integ, neuron = rmw * est["integrate"].mean(), rmw * est["neuron"].mean()
                cycles = integ + neuron + est["overhead"].mean()
                bottleneck = "(one engine)"
            else:
                cycles = float(est["pipelined"].mean())
                integ, neuron = est["bottleneck_integrate"].mean(), est["bottleneck_neuron"].mean()
                names, counts = np.unique(est["bottleneck"], return_counts=True)
                bottleneck = str(names[counts.argmax()])
            wait = max(0.0, cycles - integ - neuron)
            us = cycles / mhz
            print(f"{P:>5} {cycles:>9,.0f} {us:>8,.1f} {integ / cycles:>9.0%} {neuron / cycles:>7.0%} "
                  f"{wait / cycles:>7.0%}  {bottleneck:<16} {fit}")
            if fits and (best is None or us < best[1]):
                best = (P, us)
        if args.rtl:
            from snnfpga.rtl.graph_top import make_graph_top_plan
            from snnfpga.sim import cocotb_sim

            run = cocotb_sim.simulate(make_graph_top_plan(art, 8), images[:args.rtl], simulator="verilator")
            verdict = "bit-exact" if run.passed else f"FAILED: {run.first_problem()}"
            print(f"RTL (rtl/graph_top.py, 8 lanes, Verilator, {run.n} images): "
                  f"{run.cycles.mean():,.0f} cycles per image ({run.cycles.mean() / mhz:,.1f} us at {mhz:g} MHz), "
                  f"{verdict}")
        goal = LATENCY_TARGET_US.get(name)
        if goal is not None:
            if best is None:
                print(f"MISS  {name} <= {goal:g} us per image: no lane count fits the {target.name}")
            else:
                verdict = "PASS" if best[1] <= goal else "MISS"
                print(f"{verdict}  {name} <= {goal:g} us per image (planned): {best[1]:,.1f} us at {best[0]} lanes, "
                      f"the fastest that fits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
