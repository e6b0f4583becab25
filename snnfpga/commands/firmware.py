"""``snnfpga firmware``: generate the firmware files of a model and run firmware in the loop.

    snnfpga firmware MODEL --out DIR [--weights rom|ram] [--lanes P] [--weights-blob] [--weights-c]
                     [--run N] [--data FILE] [--split all|train|val] [--json]

Writes into DIR the generated C header (``snn_regmap.h``) and register table
(``registers.md``) of the plan, the C driver, the example ``main.c`` and the ``Makefile``;
with ``--weights-blob`` / ``--weights-c`` the weight words as a binary blob / a C array.
With ``--run N`` the C driver, linked into a Verilator harness around the generated Verilog,
infers N images (default data: the bundled validation split) and every class, score and
counter is compared with the integer reference; the exit status is 1 on any mismatch, with
the first one printed (image, what, expected, got).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from snnfpga.commands.common import emit_json, positive_int
from snnfpga.commands.verilog import add_hardware_options, hardware_plan_from_args

DESCRIPTION = __doc__.split("\n\n")[0]
COPIED = ("snn_driver.h", "snn_driver.c", "main.c", "Makefile")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("firmware", description=DESCRIPTION,
                              help="C header, register table, C driver; firmware-in-the-loop co-simulation")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default'")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--weights-blob", action="store_true", help="write the weight words as snn_weights.bin")
    p.add_argument("--weights-c", action="store_true", help="write the weight words as a C array, snn_weights.c")
    p.add_argument("--run", type=positive_int, metavar="N",
                   help="firmware in the loop: infer N images through the C driver on the Verilated RTL")
    p.add_argument("--data", default="default", metavar="FILE",
                   help=".npz, MNIST IDX images file, or 'default' (the bundled data, default)")
    p.add_argument("--split", default="val", choices=("all", "train", "val"),
                   help="which part of the data (default val: the validation split)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    add_hardware_options(p)
    p.set_defaults(func=run)


def write_files(plan, out: Path, weights_blob: bool, weights_c: bool) -> list[Path]:
    """The generated files of ``plan`` and a copy of the driver sources, in ``out``."""
    from snnfpga.firmware import codegen
    from snnfpga.firmware.fil import FIRMWARE_DIR

    out.mkdir(parents=True, exist_ok=True)
    written = [out / codegen.HEADER_NAME, out / "registers.md"]
    written[0].write_text(codegen.c_header(plan))
    written[1].write_text(codegen.registers_markdown(plan))
    for name in COPIED:
        shutil.copyfile(FIRMWARE_DIR / name, out / name)
        written.append(out / name)
    if weights_blob:
        written.append(out / "snn_weights.bin")
        written[-1].write_bytes(codegen.weights_blob(plan))
    if weights_c:
        written.append(out / "snn_weights.c")
        written[-1].write_text(codegen.weights_c(plan))
    return written


def run(args) -> int:
    from snnfpga.errors import ConfigError
    from snnfpga.rtl.csr import check_mappable

    if (args.weights_blob or args.weights_c) and args.weights != "ram":
        raise ConfigError("--weights-blob and --weights-c need --weights ram (ROM weights are in the bitstream)")
    plan = hardware_plan_from_args(args)
    check_mappable(plan)
    out = Path(args.out)
    written = write_files(plan, out, args.weights_blob, args.weights_c)
    summary = {"files": [str(p) for p in written], "interface": "wishbone", "lanes": plan.lanes,
               "weight_storage": plan.weight_storage}
    if not args.json:
        print(f"wrote {', '.join(p.name for p in written)} into {out}")
    status = 0
    if args.run:
        result = firmware_in_the_loop(plan, args)
        summary.update(result)
        status = 1 if result["mismatches"] else 0
    if args.json:
        emit_json(summary)
    return status


def firmware_in_the_loop(plan, args) -> dict:
    import numpy as np
    from tqdm import tqdm

    from snnfpga.firmware import fil
    from snnfpga.model.data import load_dataset
    from snnfpga.sim import reference, runner

    art = plan.artifact
    dataset = load_dataset(args.data).split(args.split).limit(args.run).require_input_shape(art.input_shape)
    n = len(dataset)
    print(f"firmware in the loop: {plan.summary()}, on {n} images", file=sys.stderr)
    harness = fil.build(plan)
    print(f"harness: {'cached build' if harness.cached else f'built in {harness.build_s:.1f} s'} "
          f"({harness.directory})", file=sys.stderr)
    with tqdm(total=n, unit="img", file=sys.stderr, leave=False, mininterval=0.5) as bar:
        outcome = fil.run_images(harness, dataset.images, progress=lambda done: bar.update(done - bar.n))
    comparison = fil.compare(art, dataset.images, outcome)
    labels = dataset.labels.astype(np.int64)
    got = np.array([r["class"] for r in outcome.images], dtype=np.int64)
    expected = reference.run(art, dataset.images).classes
    cycles = np.array([r["cycles"] for r in outcome.images], dtype=np.int64)
    latency = np.array([r["bus_cycles"] for r in outcome.images], dtype=np.int64)
    bad = comparison.images
    first = comparison.mismatches[0] if comparison.mismatches else None
    result = {
        "n": n,
        "matches": n - len(bad),
        "mismatches": len(bad),
        "accuracy_unit": "percent",
        "accuracy_firmware": round(100.0 * float((got == labels[:len(got)]).sum()) / n, 4),
        "accuracy_ref": round(100.0 * float((expected == labels).mean()), 4),
        "cycles_per_image": round(float(cycles.mean()), 2) if len(cycles) else None,
        "cycles_min": int(cycles.min()) if len(cycles) else None,
        "cycles_max": int(cycles.max()) if len(cycles) else None,
        "driver_cycles_per_image": round(float(latency.mean()), 2) if len(latency) else None,
        "weight_load_cycles": (outcome.events["weights"]["cycles"] - outcome.events["init"]["cycles"]
                               if "weights" in outcome.events else None),
        "simulated_cycles": outcome.total_cycles,
        "build_s": round(harness.build_s, 2),
        "build_cached": harness.cached,
        "run_s": round(outcome.wall_s, 2),
        "images_per_s": round(len(outcome.images) / max(outcome.wall_s, 1e-9), 1),
        "simulator_version": runner.simulator_version("verilator"),
        "first_mismatch": None if first is None else
        {"image": first.image, "what": first.what, "expected": first.expected, "got": first.got},
    }
    verdict = "all match the reference" if not bad else f"{len(bad)} image(s) differ from the reference"
    print(f"C driver on the Verilated RTL, {n} images: {verdict}")
    print(f"  matches            {result['matches']}/{n}")
    print(f"  accuracy firmware  {result['accuracy_firmware']:.2f}%")
    print(f"  accuracy reference {result['accuracy_ref']:.2f}%")
    if len(cycles):
        print(f"  cycles per image   {result['cycles_per_image']:.1f} (min {result['cycles_min']}, "
              f"max {result['cycles_max']}); through the driver {result['driver_cycles_per_image']:.1f}")
    if result["weight_load_cycles"] is not None:
        print(f"  weight loading     {result['weight_load_cycles']} cycles")
    print(f"  time               build {harness.build_s:.1f} s{' (cached)' if harness.cached else ''}, "
          f"run {outcome.wall_s:.2f} s ({result['images_per_s']:.0f} images/s)")
    if first is not None:
        print(f"first {first}")
    return result
