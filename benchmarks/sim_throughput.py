"""RTL simulation throughput: cold build time and images per second under cocotb.

For each simulator: a cold build (an empty build cache, so Verilator also compiles its
run-time library), then a regression over validation images through the cached build,
checked bit for bit against the reference. Prints build seconds, images, simulation
seconds, images per second, simulated cycles per second and mean cycles per image.
``--repeat R`` runs the regression R times through the cached build (one line each: the
machine's load varies); ``--stimulus python`` drives the streams from cocotb coroutines
instead of the shell (the same gaps and stalls on the same edges, see docs/simulation.md).

    python benchmarks/sim_throughput.py [--model default] [--limit 1000] [--icarus-limit 20]
                                        [--lanes P] [--weights rom|ram] [--simulators verilator icarus]
                                        [--stimulus shell|python] [--repeat R]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from snnfpga.commands.verilog import DEFAULT_LANES
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import cocotb_sim, runner


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="default")
    parser.add_argument("--limit", type=int, default=1000, help="validation images on Verilator (default 1000)")
    parser.add_argument("--icarus-limit", type=int, default=20, help="validation images on Icarus (default 20)")
    parser.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    parser.add_argument("--weights", choices=("rom", "ram"), default="rom")
    parser.add_argument("--gaps", type=float, default=0.1)
    parser.add_argument("--stall", type=float, default=0.2)
    parser.add_argument("--simulators", nargs="+", default=["verilator", "icarus"])
    parser.add_argument("--stimulus", choices=("shell", "python"), default="shell")
    parser.add_argument("--repeat", type=int, default=1, help="regressions through the cached build (default 1)")
    args = parser.parse_args()
    art = load_artifact(args.model)
    plan = make_plan(art, lanes=args.lanes, weight_storage=args.weights)
    val = load_dataset(args.data).split("val")
    print(f"model {art.name}: {'-'.join(map(str, art.sizes))}, T={art.timesteps}, {args.lanes} lanes, "
          f"{args.weights} weights; gaps {args.gaps}, stall {args.stall}; {args.stimulus} stimulus")
    print(f"{'simulator':>9} {'cold build s':>12} {'images':>6} {'sim s':>7} {'images/s':>8} {'cycles/s':>9} "
          f"{'cycles/image':>12} {'mismatches':>10}")
    for simulator in args.simulators:
        reason = runner.missing(simulator)
        if reason:
            print(f"{simulator:>9} skipped: {reason}")
            continue
        limit = args.limit if simulator == "verilator" else args.icarus_limit
        images = val.limit(limit).images
        with tempfile.TemporaryDirectory() as cache:
            first = cocotb_sim.simulate(plan, images[:1], simulator=simulator, cache=Path(cache),
                                        stimulus=args.stimulus)
            cold = first.build.build_s
            for _ in range(args.repeat):
                run = cocotb_sim.simulate(plan, images, simulator=simulator, cache=Path(cache), gaps=args.gaps,
                                          stall=args.stall, stimulus=args.stimulus)
                assert run.build.cached
                print(f"{simulator:>9} {cold:>12.1f} {run.n:>6} {run.sim_wall_s:>7.1f} "
                      f"{run.n / run.sim_wall_s:>8.1f} {run.total_cycles / run.sim_wall_s:>9.0f} "
                      f"{run.cycles.mean():>12.1f} {len(run.mismatched_images) + len(run.errors):>10}", flush=True)
                if not run.passed:
                    raise SystemExit(f"RTL differs from the reference: {run.first_problem()}")


if __name__ == "__main__":
    main()
