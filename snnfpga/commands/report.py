"""``snnfpga report``: one Markdown and one HTML report of a model, from measured figures.

    snnfpga report MODEL [--data FILE] [--split val] [--out DIR] [--targets NAME,...]
                   [--rtl-images N] [--simulator verilator|icarus] [--synth] [--json]

Writes ``DIR/report.md`` (figures in ``DIR/figures/``), a self-contained ``DIR/report.html``
and ``DIR/report.json`` (default ``out/report``): accuracy (float, integer reference, RTL on
a sample), spikes per neuron, synaptic operations, cycles per image, latency and images/s
at Fmax, resources per target, an energy estimate per image and the figures (see
:mod:`snnfpga.report`). Resources come from ``snnfpga synth`` runs in ``DIR/<target>/``;
``--synth`` runs the missing ones (minutes per target), otherwise they are marked "not run".
"""

from __future__ import annotations

from snnfpga.commands.common import emit_json, non_negative_int

DEFAULT_OUT = "out/report"
DESCRIPTION = __doc__.split("\n\n")[0]


def target_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated target names."""
    import argparse

    from snnfpga.rtl.targets import TARGETS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in names if t not in TARGETS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected targets from {', '.join(TARGETS)}, got {text!r}")
    return names


def add_report_options(p) -> None:
    """Options shared by ``report`` and ``run``."""
    from snnfpga.rtl.targets import TARGETS

    p.add_argument("--split", default="val", choices=("all", "train", "val"),
                   help="which part of the data (default val, the fixed validation split)")
    p.add_argument("--rtl-images", type=non_negative_int, default=50, metavar="N",
                   help="images simulated bit-exactly in the generated Verilog (default 50; 0: none)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="simulator of the RTL sample (default verilator)")
    p.add_argument("--targets", type=target_list, default=tuple(TARGETS), metavar="NAME,...",
                   help=f"FPGA targets in the report (default {','.join(TARGETS)})")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", description=DESCRIPTION,
                              help="Markdown and HTML report: accuracy, activity, cycles, resources, energy, plots")
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default' / 'tiny'")
    p.add_argument("--data", default="default", metavar="FILE",
                   help=".npz, MNIST IDX images file, or 'default' (the bundled data, the default)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    add_report_options(p)
    p.add_argument("--synth", action="store_true",
                   help="run snnfpga synth for targets without a result in DIR/<target>/ (minutes each)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def summary_lines(report: dict) -> list[str]:
    """The report's headline figures as a few lines of text."""
    acc = report["accuracy"]
    m = report["model"]
    shape = "-".join(map(str, m["sizes"])) if m.get("sizes") else m["topology"]
    lines = [f"report of {m['name']} ({shape}, T={m['timesteps']}) on {report['data']['n']} images "
             f"({report['data']['split']})"]
    if acc["float"] is not None:
        lines.append(f"  accuracy float     {acc['float']:.2f}%")
    lines.append(f"  accuracy integer   {acc['integer']:.2f}%")
    rtl = acc["rtl"]
    if rtl:
        verdict = "bit-exact" if rtl["mismatches"] == 0 and rtl["errors"] == 0 else f"{rtl['mismatches']} differ"
        lines.append(f"  accuracy RTL       {rtl['accuracy_rtl']:.2f}% on {rtl['n']} images ({verdict})")
    act = report["activity"]
    lines.append(f"  spikes/neuron      {act['spikes_per_neuron']:.3f}; synaptic ops {act['synaptic_ops']:,.0f} per image")
    for row in report["targets"]:
        head = f"  {row['target']:<18} {row['lanes']} lanes, {row['cycles_per_image']:,.0f} cycles/image"
        if row["status"] != "measured":
            lines.append(f"{head}; resources not run ({row['command']})")
            continue
        logic = f"{row['logic_cells']:,} LC" if row["target"].startswith("ice40") else f"{row['luts']:,} LUT4"
        fmax = f"{row['fmax_mhz']:.1f} MHz" if row["fmax_mhz"] else "no Fmax"
        lat = f", {row['latency_us']:.1f} us/image" if row.get("latency_us") else ""
        lines.append(f"{head}; {logic}, {row['brams']} BRAM, {row['dsps']} DSP, {fmax}{lat}, "
                     f"{'fits' if row['fits'] else 'does NOT fit'}")
    if report.get("hardware"):
        lines.append("  hardware           not yet for layer graphs (verilog, sim, synth, firmware refuse them)")
    lines.append(f"  files              {report['files']['markdown']}, {report['files']['html']}")
    return lines


def run(args) -> int:
    from snnfpga.report import make_report

    report = make_report(args.model, args.out, data=args.data, split=args.split, targets=args.targets,
                         rtl_images=args.rtl_images, simulator=args.simulator, synth=args.synth)
    print("\n".join(summary_lines(report)))
    if args.json:
        emit_json(report)
    rtl = report["accuracy"]["rtl"]
    return 1 if rtl and (rtl["mismatches"] or rtl["errors"]) else 0
