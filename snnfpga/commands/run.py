"""``snnfpga run``: the whole flow in one command, on the default model and the bundled data.

    snnfpga run [--model MODEL | --train [--preset NAME] [--epochs N]] [--data FILE]
                [--target ecp5-85k|ice40-up5k] [--images N] [--simulator verilator|icarus]
                [--out DIR] [--json]

Steps, each on the previous one's output (files under ``DIR``, default ``out/run``):

1. model: ``MODEL`` (default ``default``, the shipped model), or with ``--train`` a new
   one trained into ``DIR/model`` (``snnfpga train``);
2. evaluate it on the validation split: float and integer accuracy (``snnfpga eval``);
3. generate the Verilog for the target's configuration into ``DIR/verilog`` (``snnfpga verilog``);
4. simulate ``N`` validation images in that Verilog and compare every spike, score and
   class with the integer reference (``snnfpga sim``; default 100 images on Verilator);
5. synthesize, place and route for the target (``snnfpga synth``, into ``DIR/report/<target>``);
6. write the report (``snnfpga report``): ``DIR/report/report.md`` and ``report.html``.

The exit status is 1 when the RTL differs from the reference on any image.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from snnfpga.commands.common import emit_json, positive_int

DEFAULT_OUT = "out/run"
DEFAULT_TARGET = "ecp5-85k"
DESCRIPTION = __doc__.split("\n\n")[0]


def add_parser(subparsers) -> None:
    from snnfpga.model.config import PRESETS
    from snnfpga.rtl.targets import TARGETS

    p = subparsers.add_parser("run", description=DESCRIPTION,
                              help="the whole flow: model, eval, Verilog, bit-exact simulation, synthesis, report")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", default="default", metavar="MODEL",
                        help="model directory, or 'default' (the default) / 'tiny'")
    source.add_argument("--train", action="store_true", help="train a new model into DIR/model first")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="preset for --train (default: default)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="QAT epochs for --train (default: the preset's)")
    p.add_argument("--data", default="default", metavar="FILE",
                   help=".npz, MNIST IDX images file, or 'default' (the bundled data, the default)")
    p.add_argument("--target", default=DEFAULT_TARGET, choices=tuple(TARGETS), metavar="NAME",
                   help=f"FPGA target: {', '.join(TARGETS)} (default {DEFAULT_TARGET})")
    p.add_argument("--images", type=positive_int, default=100, metavar="N",
                   help="validation images simulated bit-exactly in the Verilog (default 100)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="RTL simulator (default verilator)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from snnfpga.commands.synth import plan_for_target, synthesize
    from snnfpga.model.data import load_dataset
    from snnfpga.model.evaluate import evaluate
    from snnfpga.report import make_report, rtl_check
    from snnfpga.rtl.fusesoc import write_core
    from snnfpga.rtl.generate import write_verilog
    from snnfpga.rtl.implement import Progress
    from snnfpga.rtl.targets import get_target
    from snnfpga.sim import runner

    start = time.time()
    out = Path(args.out)
    target = get_target(args.target)
    progress = Progress("run")
    runner.configure(args.simulator)  # a missing simulator fails now, not after training
    val = load_dataset(args.data).split("val")
    model = args.model
    if args.train:
        from snnfpga.model.config import preset
        from snnfpga.model.train import train

        config = preset(args.preset)
        if args.epochs:
            config = config.replace(epochs=args.epochs)
        model = str(out / "model")
        with progress.stage(f"1/6 train preset {config.name} ({config.epochs} epochs) into {model}"):
            train(config, load_dataset(args.data), model,
                  data_label=args.data if args.data == "default" else Path(args.data).name)
    else:
        progress.say(f"1/6 model {model}")

    with progress.stage(f"2/6 evaluate on {len(val)} validation images"):
        acc = evaluate(model, val)
    plan = plan_for_target(model, target)
    with progress.stage(f"3/6 Verilog for {target.name} ({plan.lanes_label}) into {out / 'verilog'}"):
        description = write_verilog(plan, out / "verilog", top="snn_top")
        write_core(description, out / "verilog")  # FuseSoC CAPI2 core beside it (rtl/fusesoc.py)
    images = val.limit(args.images)  # shape checked by evaluate()
    progress.say(f"4/6 bit-exact simulation of {len(images)} images ({args.simulator})")
    rtl = rtl_check(plan, images.images, images.labels.astype(np.int64), simulator=args.simulator,
                    work_dir=out / "rtl_sim", progress=progress)
    progress.say(f"5/6 synthesis, place and route for {target.name}")
    synth = synthesize(model, target.name, out / "report", data=None)
    progress.say("6/6 report")
    report = make_report(model, out / "report", data=args.data, targets=(target.name,), rtl=rtl,
                         evaluation=acc, progress=progress)
    row = report["targets"][0]
    summary = {
        "model": model, "target": target.name, "n": acc["n"], "accuracy_unit": "percent",
        "accuracy_float": acc["accuracy_float"], "accuracy_int": acc["accuracy_int"],
        "spikes_per_neuron": acc["spikes_per_neuron"], "synaptic_ops": acc["synaptic_ops"],
        "rtl_images": rtl["n"], "mismatches": rtl["mismatches"], "accuracy_rtl": rtl["accuracy_rtl"],
        "accuracy_ref": rtl["accuracy_ref"], "cycles_per_image": rtl["cycles_per_image"],
        "cycles_model": row["cycles_per_image"], "simulator": rtl["simulator"],
        "lanes": plan.lanes, "luts": synth["luts"], "ffs": synth["ffs"], "brams": synth["brams"],
        "dsps": synth["dsps"], "multipliers": synth["multipliers"], "fmax_mhz": synth["fmax_mhz"],
        "fits": synth["fits"], "latency_us": row.get("latency_us"), "images_per_s": row.get("images_per_s"),
        "energy_nj": row["energy"]["total_nj"] if row["energy"] else None,
        "verilog": str(out / "verilog" / description["files"][0]),
        "report": report["files"]["markdown"], "report_html": report["files"]["html"],
        "wall_s": round(time.time() - start, 1),
    }
    verdict = "bit-exact" if not rtl["mismatches"] and not rtl["errors"] else \
        f"{rtl['mismatches']} image(s) DIFFER, {rtl['errors']} error(s)"
    logic = f"{synth['logic_cells']:,} logic cells" if target.family == "ice40" else f"{synth['luts']:,} LUT4"
    shape = "layer graph" if plan.is_graph else "-".join(map(str, plan.artifact.sizes))
    print(f"snnfpga run: {plan.artifact.name} ({shape}) on {target.name}")
    float_acc = "n/a (no checkpoint)" if acc["accuracy_float"] is None else f"{acc['accuracy_float']:.2f}%"
    print(f"  accuracy      float {float_acc}, integer {acc['accuracy_int']:.2f}% ({acc['n']} validation images)")
    print(f"  RTL           {rtl['accuracy_rtl']:.2f}% on {rtl['n']} images: {verdict} ({rtl['simulator']})")
    print(f"  activity      {acc['spikes_per_neuron']:.3f} spikes/neuron, {acc['synaptic_ops']:,.0f} synaptic ops/image")
    print(f"  hardware      {plan.lanes_label}, {logic}, {synth['brams']} block RAMs, {synth['dsps']} DSPs, "
          f"{synth['multipliers']} multiplier cells, {'fits' if synth['fits'] else 'does NOT fit'}")
    if synth["fmax_mhz"]:
        print(f"  timing        Fmax {synth['fmax_mhz']:.1f} MHz, {row['cycles_per_image']:,.0f} cycles/image "
              f"(model; {rtl['cycles_per_image']:,.0f} measured) = {row['latency_us']:.1f} us/image")
    if row["energy"]:
        print(f"  energy        {row['energy']['total_nj']:.1f} nJ/image (estimate)")
    print(f"  report        {report['files']['markdown']}  ({summary['wall_s']:.0f} s in all)")
    if args.json:
        emit_json(summary)
    if rtl["mismatches"] or rtl["errors"]:
        print(f"error: the RTL differs from the reference on {rtl['mismatches']} image(s); see "
              f"snnfpga sim {model} --data {args.data} --split val", file=sys.stderr)
        return 1
    return 0
