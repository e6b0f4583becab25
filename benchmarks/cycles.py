"""Cycles per image of the generated accelerator against spike counts and the cycle model.

Runs validation images through the RTL in simulation, and prints per lane count: mean,
min and max measured cycles per image, the cycle model's estimate (rtl/cycle_model.py),
the least-squares slope of cycles against input spikes (event-driven: it should be close to
G_1 = ceil(n_1 / P)) and a table of cycles by input-spike bins, plus latency at 100 MHz.

    python benchmarks/cycles.py [--model default] [--lanes 16 32 64] [--limit 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl import cycle_model
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="default")
    parser.add_argument("--lanes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--limit", type=int, default=50, help="validation images (default 50)")
    args = parser.parse_args()
    art = load_artifact(args.model)
    images = load_dataset(args.data).split("val").limit(args.limit).images
    ref = reference.run(art, images)
    input_spikes = ref.spike_counts()[0]
    print(f"model {art.name}: {'-'.join(map(str, art.sizes))}, T={art.timesteps}, "
          f"{len(images)} validation images, input spikes/image {input_spikes.mean():.1f}")
    print(f"{'lanes':>5} {'groups':>12} {'mean':>7} {'min':>6} {'max':>6} {'model':>7} {'seq.bound':>9} "
          f"{'slope':>6} {'us@100MHz':>9} {'wall_s':>7}")
    for lanes in args.lanes:
        plan = make_plan(art, lanes=lanes)
        start = time.time()
        run = amaranth_sim.simulate(plan, images)
        wall = time.time() - start
        bad = compare(ref, run.trace)
        if bad:
            raise SystemExit(f"RTL differs from the reference: {bad[0]}")
        est = cycle_model.estimate(plan, ref)
        slope = np.polyfit(input_spikes, run.cycles, 1)[0]
        groups = "x".join(str(lp.groups) for lp in plan.layers)
        print(f"{lanes:>5} {groups:>12} {run.cycles.mean():>7.0f} {run.cycles.min():>6} {run.cycles.max():>6} "
              f"{est['pipelined'].mean():>7.0f} {est['sequential'].mean():>9.0f} {slope:>6.2f} "
              f"{run.cycles.mean() / 100:>9.1f} {wall:>7.1f}")
        bins = np.quantile(input_spikes, [0, 0.25, 0.5, 0.75, 1.0])
        rows = []
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = (input_spikes >= lo) & (input_spikes <= hi)
            rows.append(f"{int(lo)}-{int(hi)} spikes: {run.cycles[sel].mean():.0f}")
        print("       cycles by input spikes: " + "; ".join(rows))


if __name__ == "__main__":
    main()
