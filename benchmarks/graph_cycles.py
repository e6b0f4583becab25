"""Cycles per image of the layer-graph hardware against lanes, per shipped preset.

    python benchmarks/graph_cycles.py [--images N] [--lanes 8,16,32,64,128] [--rtl M] [PRESET ...]

For each preset, on reference activity of the first ``N`` validation images:

1. **The generated accelerator** (rtl/graph_top.py) from its cycle model
   (:mod:`snnfpga.rtl.graph_cycles`, an image entering an idle accelerator) for each lane
   count and for the fold of its lanes to the target (``fold``, rtl/graph_fold.py: what
   ``snnfpga synth`` builds): cycles per image, microseconds at the target's clock, the
   share of cycles in the encoder's phases, the engines' neuron passes, the scatter of
   their events into the readers (integrate) and the fixed schedule (clearing, starts,
   decision), and the block RAM the design needs (rtl/graph_fold.py's model).
2. **The planned pipelined design** (:func:`snnfpga.rtl.graph_plan.estimate`, not built yet):
   the figures the next design is aimed at, ``pipelined`` on the ECP5-85F (one engine per
   neuron, buffer and scan node), ``shared`` on the iCE40 UP5K (one engine, memories pooled,
   two cycles per state update on single-port SPRAM), with whether its memories fit.

``--rtl M`` also runs the generated accelerator (the fold) on the first ``M`` validation
images on Verilator, images back to back, and compares its cycles per image with the cycle
model for the same stream (``streamed=True``): PASS when every image is within 2%.
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
    from snnfpga.rtl import graph_cycles, graph_fold, graph_plan
    from snnfpga.rtl.graph_top import make_graph_top_plan
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
        print(f"\n{name}: {len(images)} validation images, {int(reference.synaptic_ops(art, trace).mean()):,} "
              f"synaptic ops/image; {target.name} at {mhz:g} MHz")
        print("generated accelerator (rtl/graph_top.py), cycle model:")
        print(f"{'lanes':>5} {'cycles':>9} {'us':>8} {'encode':>7} {'neuron':>7} {'integrate':>9} {'fixed':>6}  "
              f"block RAM")
        prim = graph_fold.BLOCK_PRIMITIVE[target.family]
        fold = make_graph_top_plan(art, lane_caps=graph_fold.fold_for(art, target))
        for P, plan in [*((P, make_graph_top_plan(art, P)) for P in lanes), ("fold", fold)]:
            est = graph_cycles.estimate(plan, trace)
            c = float(est["cycles"].mean())
            shares = " ".join(f"{float(est[k].mean()) / c:>{w}.0%}" for k, w in
                              (("encode", 7), ("neuron", 7), ("integrate", 9), ("fixed", 6)))
            blocks = sum(graph_fold.block_ram(plan, target).values())
            print(f"{P:>5} {c:>9,.0f} {c / mhz:>8,.1f} {shares}  {blocks} / {target.capacity[prim]} {prim.upper()}")
        print(f"fold: {fold.lanes_label}: " + ", ".join(f"{g[0]} {fold.node_lanes[g[0]]}"
                                                        for g in graph_fold.lane_groups(fold)))
        mode = graph_plan.schedule(target)
        print(f"planned design ({mode} schedule):")
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
            from snnfpga.sim import cocotb_sim

            plan = fold
            run = cocotb_sim.simulate(plan, images[:args.rtl], simulator="verilator")
            verdict = "bit-exact" if run.passed else f"FAILED: {run.first_problem()}"
            model = graph_cycles.estimate(plan, reference.run(art, images[:run.n]), streamed=True)["cycles"]
            err = 100.0 * np.abs(model - run.cycles) / run.cycles
            print(f"RTL ({plan.lanes_label}, Verilator, {run.n} images back to back): {run.cycles.mean():,.0f} cycles per image "
                  f"({run.cycles.mean() / mhz:,.1f} us at {mhz:g} MHz), {verdict}")
            print(f"{'PASS' if err.max() <= 2.0 else 'MISS'}  cycle model within 2% of the RTL per image: "
                  f"largest error {err.max():.2f}%, mean {err.mean():.2f}% ({run.n} images)")
        goal = LATENCY_TARGET_US.get(name)
        if goal is not None:
            rtl_us = float(graph_cycles.estimate(fold, trace)["cycles"].mean()) / mhz
            print(f"{'PASS' if rtl_us <= goal else 'MISS'}  {name} <= {goal:g} us per image (generated, the fold, "
                  f"model, at {mhz:g} MHz): {rtl_us:,.1f} us")
            if best is None:
                print(f"MISS  {name} <= {goal:g} us per image (planned): no lane count fits the {target.name}")
            else:
                verdict = "PASS" if best[1] <= goal else "MISS"
                print(f"{verdict}  {name} <= {goal:g} us per image (planned): {best[1]:,.1f} us at {best[0]} lanes, "
                      f"the fastest that fits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
