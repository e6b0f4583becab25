"""``snnfpga sweep``: design-space sweep over lanes and weight bits for one FPGA target.

    snnfpga sweep MODEL --target ice40-up5k|ecp5-85k [--lanes 8,16,32,64] [--weight-bits 2,4,8]
                  [--data FILE] [--images N] [--synth-only] [--seeds N] [--jobs J] [--scheduler SPEC]
                  [--out DIR] [--json]

Per point: integer accuracy (weights re-quantized after training where the width is not
the model's own), cycles per image (cycle model), LUTs / logic cells, flip-flops, block
RAMs, DSPs, Fmax and latency at Fmax; the Pareto front over latency, logic and block RAM
among the points that fit (column ``Pareto``: ``yes``, and ``best`` for the fastest). Writes ``DIR/sweep.md``, ``DIR/sweep.html`` (table
and plot) and ``DIR/sweep.json`` (default ``out/sweep``); each point's tool files go to
``DIR/<target>/w<bits>_p<lanes>/`` and are reused when nothing changed. Every point is
a Yosys and nextpnr run (minutes each); ``--synth-only`` skips place and route (no Fmax).
The points run ``--jobs J`` at a time on this machine (default 1), or on a Dask cluster with
``--scheduler`` (docs/scale-out.md; the output directory must then be on a file system the
workers share). A point that fails twice is reported by name, the others go on, and the
exit status is 1; a rerun does only the points that are missing.
"""

from __future__ import annotations

from snnfpga.commands.common import emit_json

DEFAULT_OUT = "out/sweep"
DEFAULT_LANES = (8, 16, 32, 64)
DESCRIPTION = __doc__.split("\n\n")[0]


def int_list(low: int, high: int):
    """argparse type: comma-separated integers in ``low..high``."""
    import argparse

    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if not values or any(not low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"expected integers in {low}..{high}, got {text!r}")
        return sorted(set(values))

    return parse


def add_parser(subparsers) -> None:
    from snnfpga.commands.common import positive_int
    from snnfpga.executor import SCHEDULER_HELP
    from snnfpga.model.requantize import MAX_BITS, MIN_BITS
    from snnfpga.rtl.plan import MAX_LANES
    from snnfpga.rtl.targets import TARGETS

    p = subparsers.add_parser("sweep", description=DESCRIPTION,
                              help="design-space sweep over lanes and weight bits: cycles, resources, Fmax, latency")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default' / 'tiny'")
    p.add_argument("--target", required=True, choices=tuple(TARGETS), metavar="NAME",
                   help="FPGA target: " + ", ".join(TARGETS))
    p.add_argument("--lanes", type=int_list(1, MAX_LANES), default=list(DEFAULT_LANES), metavar="P,...",
                   help=f"lane counts (default {','.join(map(str, DEFAULT_LANES))})")
    p.add_argument("--weight-bits", type=int_list(MIN_BITS, MAX_BITS), metavar="B,...",
                   help="weight widths (default: the model's own); others are re-quantized after training")
    p.add_argument("--data", default="default", metavar="FILE",
                   help="images for accuracy and the cycle model (validation split; default the bundled data)")
    p.add_argument("--images", type=positive_int, default=1000, metavar="N",
                   help="validation images for accuracy and cycles (default 1000)")
    p.add_argument("--synth-only", action="store_true", help="synthesis only: resources, no place and route or Fmax")
    p.add_argument("--seeds", type=positive_int, metavar="N",
                   help="placement seeds per point, the best Fmax kept (default: the target's, 3)")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="J",
                   help="points at a time on this machine (default 1; each runs up to 2 nextpnr seeds at once)")
    p.add_argument("--scheduler", metavar="SPEC", help=SCHEDULER_HELP)
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from snnfpga.executor import get_executor
    from snnfpga.rtl.implement import Progress
    from snnfpga.rtl.targets import get_target
    from snnfpga.sweep import sweep, text_table

    target = get_target(args.target)
    with get_executor(args.scheduler, workers=args.jobs) as executor:
        result = sweep(args.model, target, args.lanes, args.weight_bits, args.out, data=args.data,
                       images=args.images, place_and_route=not args.synth_only, seeds=args.seeds,
                       progress=Progress("sweep"), executor=executor)
    print(f"sweep of {result['artifact']} on {result['target']} ({result['device']}), {result['images']} images")
    print(text_table(result["rows"]))
    best = next((r for r in result["rows"] if r["best"]), None)
    if best:
        print(f"best: {best['weight_bits']}-bit weights, {best['lanes']} lanes, {best['latency_us']} us per image "
              f"at {best['fmax_mhz']} MHz")
    else:
        print("best: none (no point fits with a measured Fmax)")
    print(f"files: {result['files']['markdown']}, {result['files']['html']}")
    for failure in result["failed"]:
        print(f"failed: point {failure}; rerun the sweep to retry only the missing points", file=sys.stderr)
    if args.json:
        emit_json(result)
    return 1 if result["failed"] else 0
