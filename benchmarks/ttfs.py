"""Time-to-first-spike models against their targets, beside the rate-coded MLPs.

    python benchmarks/ttfs.py [--models ttfs,ttfs-tiny] [--data default] [--synth FILE.json ...]

Prints, on the validation split (the last 1,000 bundled images), for each TTFS model
(``model/<name>``): integer accuracy (targets: >= 98.0% for ``ttfs``, >= 97.0% for
``ttfs-tiny``), spikes per hidden neuron (target <= 0.3) and the silent fraction, whether
the TTFS reference and the integer ReLU network predict the same class on every image
(target: yes, and the same scores), synaptic operations and an energy estimate per image;
and the same figures for the rate-coded ``default`` and ``tiny``.

Cycles per image (mean over the split) come from each accelerator's cycle model, with the
plan ``snnfpga synth`` builds for each target (TTFS: the graph accelerator, engines' lanes
folded to the target; rate-coded: the chain at the target's lanes); the model agrees with
RTL simulation within 0.2% per image on ``ttfs-tiny`` (tests/test_rtl_ttfs.py). Latency is
cycles / Fmax for each ``--synth`` result given (the JSON line of ``snnfpga synth MODEL
--target T --json``, or a synth directory's ``result.json``), else printed as "-".

The energy of a TTFS model is an estimate from the contract's operation counts (the graph
accelerator has no energy counters yet), under ``snnfpga.energy``'s ASIC figures (Horowitz 2014): per input spike one
weight row read (``n_out * weight_bits`` bits from the layer's weight memory) and
``n_out`` slope additions; per window step one membrane addition per neuron in the
integrate and in the fire window, and a read and write of the neuron's slope and membrane
from a state memory. The rate-coded rows use the accelerator's counted operations at 64
lanes (``snnfpga.energy.estimate``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ACCURACY_TARGETS = {"ttfs": 98.0, "ttfs-tiny": 97.0}
MAX_SPIKES = 0.3


def ttfs_energy_nj(art, trace) -> float:
    """The estimate of the module docstring, nJ per image (mean over the trace)."""
    from snnfpga.energy import PJ, sram_pj

    s = art.encoder.window_steps
    total_pj = 0.0
    events = trace.spike_counts()[0].mean()  # input spikes per image
    for node in art.nodes:
        n_out, n_in = node.weight.shape
        capacity = node.weight.size * node.weight_bits
        total_pj += sram_pj(events * n_out * node.weight_bits, capacity) + events * n_out * PJ["add16"]
        steps = 2 * s if node.KIND == "ttfs" else s  # integrate (and fire) windows
        state_bits = node.slope_bits + (node.membrane_bits if node.KIND == "ttfs" else node.score_bits)
        total_pj += steps * n_out * PJ["add16"] + sram_pj(2 * steps * n_out * state_bits, n_out * state_bits)
        if node.KIND == "ttfs":
            events = trace.node_spikes(node.name).reshape(len(trace.scores), -1).sum(axis=1).mean()
    total_pj += art.n_inputs * PJ["add8"]  # the encoder's shift and compare per pixel
    return total_pj / 1000.0


def rate_energy_nj(art, trace) -> float:
    from snnfpga.energy import estimate
    from snnfpga.rtl.plan import make_plan

    return float(estimate(make_plan(art, lanes=64), trace)["total_nj"])


def cycles(art, trace, target) -> float:
    """Mean cycles per image of the plan ``snnfpga synth`` builds for ``target``."""
    from snnfpga.commands.synth import target_plan

    plan = target_plan(art, target)
    return float(plan.cycle_model.cycles_per_image(plan, trace).mean())


def timing(art, trace, targets, fmax) -> str:
    """``up5k 4,021 cyc 93.1 us | ecp5 ...`` (latency where a synth result gives Fmax)."""
    out = []
    for target in targets:
        c = cycles(art, trace, target)
        mhz = fmax.get((art.name, target.name))
        out.append(f"{target.name}: {c:,.0f} cyc" + (f", {c / mhz:,.1f} us @ {mhz:.1f} MHz" if mhz else ", -"))
    return " | ".join(out)


def read_synth(files) -> dict:
    """``{(model, target): fmax_mhz}`` from ``snnfpga synth --json`` outputs or the
    ``result.json`` of a synth directory."""
    import json

    out = {}
    for f in files:
        text = Path(f).read_text().strip()
        try:
            d = json.loads(text)  # a synth result.json
        except json.JSONDecodeError:
            d = json.loads(text.splitlines()[-1])  # the last line of snnfpga synth --json
        if d.get("fmax_mhz"):
            out[(d["model"], d["target"])] = float(d["fmax_mhz"])
    return out


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT.parent))
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.kinds.ttfs import relu_forward
    from snnfpga.sim import reference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ttfs,ttfs-tiny")
    p.add_argument("--data", default="default")
    p.add_argument("--synth", nargs="*", default=[], help="snnfpga synth --json outputs (for latency)")
    args = p.parse_args(argv)
    from snnfpga.rtl.targets import get_target

    targets = [get_target(t) for t in ("ice40-up5k", "ecp5-85k")]
    fmax = read_synth(args.synth)
    val = load_dataset(args.data).split("val")
    print(f"validation split: {len(val)} images")
    header = f"{'model':10} {'integer':>8} {'target':>7} {'spikes/n':>9} {'silent':>7} {'TTFS=ReLU':>9} " \
             f"{'syn ops':>9} {'energy nJ':>10}  cycles per image (cycle model), latency"
    print(header)
    failed = 0
    for name in args.models.split(","):
        art = load_artifact(ROOT / "model" / name)
        trace = reference.run(art, val.images, record=True)
        acc = 100.0 * float((trace.classes == val.labels).mean())
        spn = float(reference.spikes_per_neuron(art, trace).mean())
        silent = float(reference.silent_fraction(art, trace).mean())
        x = val.images.reshape(len(val), -1).astype(np.int64) >> (8 - art.encoder.bits)
        _, relu_scores = relu_forward(art.nodes, art.encoder.window_steps, x)
        same = bool(np.array_equal(relu_scores, trace.scores))
        ops = float(reference.synaptic_ops(art, trace).mean())
        ok = acc >= ACCURACY_TARGETS.get(name, 0.0) and spn <= MAX_SPIKES and same
        failed += not ok
        print(f"{name:10} {acc:7.2f}% {ACCURACY_TARGETS.get(name, 0.0):6.1f}% {spn:9.3f} {100 * silent:6.1f}% "
              f"{'yes' if same else 'NO':>9} {ops:9,.0f} {ttfs_energy_nj(art, trace):10.1f}  "
              f"{timing(art, trace, targets, fmax)}{'' if ok else '  MISSED'}")
    for name in ("default", "tiny"):
        art = load_artifact(name)
        trace = reference.run(art, val.images, record=True)
        acc = 100.0 * float((trace.classes == val.labels).mean())
        spn = float(reference.spikes_per_neuron(art, trace).mean())
        silent = float(reference.silent_fraction(art, trace).mean())
        ops = float(reference.synaptic_ops(art, trace).mean())
        print(f"{name:10} {acc:7.2f}% {'':>7} {spn:9.3f} {100 * silent:6.1f}% {'':>9} {ops:9,.0f} "
              f"{rate_energy_nj(art, trace):10.1f}  {timing(art, trace, targets, fmax)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
