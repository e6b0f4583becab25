"""The layer-graph presets against their targets, beside the default MLP, in one run.

    python benchmarks/graphs.py [--models mixer,mixer-glif,mixer-tiny] [--data default]

Evaluates every model on the validation split (float from checkpoint.pt, integer from the
numpy reference), prints accuracy (percent), the float-to-integer gap (points), weight
memory (bits of weights and biases, from the artifact's widths), synaptic operations and
spikes per neuron per image, per node for the graphs, the reference throughput on one core
(images/s, best of 3 over 1,000 images), and the targets of issue 11 with PASS/MISS:

* mixer: integer >= 99.0%, gap <= 0.3 points, >= default + 0.3 points (same run);
* mixer-glif: within 0.5 points of mixer; mixer-tiny: integer >= 98.5%;
* the reference >= 1,000 images/s for mixer on one core;
* weights and state (``snnfpga describe``: memory bits) within the on-chip memory of the
  target: mixer on the ECP5-85F (208 DP16KD of 18 kbit), mixer-tiny on the iCE40 UP5K
  (4 SPRAM of 256 kbit and 30 EBR of 4 kbit), counts from rtl/targets.py.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def throughput(art, images, repeat=3) -> float:
    from snnfpga.sim import reference

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        reference.run(art, images, record=False)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    from snnfpga.errors import SnnfpgaError
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.describe import describe
    from snnfpga.model.evaluate import evaluate

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mixer,mixer-glif,mixer-tiny")
    p.add_argument("--data", default="default")
    args = p.parse_args(argv)
    names = ["default"] + [m for m in args.models.split(",") if m]
    try:
        val = load_dataset(args.data).split("val")
        results = {}
        for name in names:
            art = load_artifact(name)
            r = evaluate(name, val)
            totals = describe(art)["totals"]
            r["weight_bits_total"], r["memory_bits"] = totals["weight_bits"], totals["memory_bits"]
            r["images_per_s"] = round(throughput(art, val.images))
            results[name] = r
    except SnnfpgaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"validation split of {args.data}: {len(val)} images; reference on 1 thread")
    print(f"{'model':<12} {'topology':<20} {'float':>7} {'integer':>8} {'gap':>6} {'weights (kbit)':>15} "
          f"{'synaptic ops':>13} {'spikes/neuron':>14} {'images/s':>9}")
    for name, r in results.items():
        fl = "n/a" if r["accuracy_float"] is None else f"{r['accuracy_float']:.2f}"
        gap = "n/a" if r["gap"] is None else f"{r['gap']:+.2f}"
        print(f"{name:<12} {r['topology']:<20} {fl:>7} {r['accuracy_int']:>8.2f} {gap:>6} "
              f"{r['weight_bits_total'] / 1000:>15,.1f} {r['synaptic_ops']:>13,.0f} {r['spikes_per_neuron']:>14.3f} "
              f"{r['images_per_s']:>9,}")
    for name in names[1:]:
        print(f"\n{name}: per node (means per image)")
        for row in results[name]["nodes"]:
            if "spikes" in row or "synaptic_ops" in row:
                spikes = f"{row['spikes']:>9,.1f} spikes {row['spikes_per_neuron']:.3f}/neuron" if "spikes" in row else ""
                ops = f"{row['synaptic_ops']:>11,.0f} ops" if "synaptic_ops" in row else ""
                print(f"  {row['name']:<16} {row['kind']:<10} {'x'.join(map(str, row['shape'])):<9} {spikes:<36}{ops}")

    def fits(name, target):
        from snnfpga.rtl.targets import get_target

        bits = get_target(target).memory_bits
        used = results[name]["memory_bits"]
        check(f"{name} weights and state fit the {target} memory", used <= bits,
              f"{used / 1000:,.1f} of {bits / 1000:,.1f} kbit")

    def check(label, ok, figure):
        print(f"{'PASS' if ok else 'MISS'}  {label}: {figure}")

    print()
    d = results["default"]["accuracy_int"]
    if "mixer" in results:
        m = results["mixer"]
        check("mixer integer >= 99.0%", m["accuracy_int"] >= 99.0, f"{m['accuracy_int']:.2f}%")
        if m["gap"] is not None:
            check("mixer gap <= 0.3 points", m["gap"] <= 0.3, f"{m['gap']:+.2f}")
        check("mixer >= default + 0.3 points", m["accuracy_int"] >= d + 0.3,
              f"{m['accuracy_int']:.2f}% vs {d:.2f}% ({m['accuracy_int'] - d:+.2f})")
        check("reference >= 1,000 images/s for mixer", m["images_per_s"] >= 1000, f"{m['images_per_s']:,} images/s")
        fits("mixer", "ecp5-85k")
        if "mixer-glif" in results:
            g = results["mixer-glif"]["accuracy_int"]
            check("mixer-glif within 0.5 points of mixer", g >= m["accuracy_int"] - 0.5,
                  f"{g:.2f}% ({g - m['accuracy_int']:+.2f})")
    if "mixer-tiny" in results:
        t = results["mixer-tiny"]["accuracy_int"]
        check("mixer-tiny integer >= 98.5%", t >= 98.5, f"{t:.2f}%")
        fits("mixer-tiny", "ice40-up5k")
    print(json.dumps({k: {key: v[key] for key in ("accuracy_float", "accuracy_int", "gap", "weight_bits_total",
                                                 "memory_bits", "synaptic_ops", "spikes_per_neuron", "images_per_s")}
                      for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
