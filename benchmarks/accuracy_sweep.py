"""Accuracy against time steps T and weight bits: short quantization-aware trainings.

    python benchmarks/accuracy_sweep.py [--preset tiny] [--epochs 20] [--steps 1,2,4,8]
                                        [--bits 2,3,4,6,8] [--jobs 2] [--scheduler SPEC]
                                        [--out benchmarks/results]

For every (T, bits) pair, trains the preset (default ``tiny``: 784-128-10) with that T and
weight width for ``--epochs`` QAT epochs (plus the preset's fine-tune) on the bundled
data's training split, and records float and integer accuracy (percent) on the validation
split, spikes per neuron, synaptic operations and seconds. Prints a table and writes
``OUT/accuracy_sweep.json`` (read by ``snnfpga report`` for its accuracy figure). Seeded:
the same command gives the same accuracies. Trainings run in ``--jobs`` processes, or on a
Dask cluster with ``--scheduler`` (snnfpga/executor.py, docs/scale-out.md); a training that
fails twice is reported by name and left out of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Point:
    """One training of the sweep, as an executor job."""

    name: str
    preset: str
    epochs: int
    steps: int
    bits: int


def train_point(point: Point) -> dict:
    from snnfpga.model.config import preset
    from snnfpga.model.data import load_dataset
    from snnfpga.model.train import train

    steps, bits, epochs = point.steps, point.bits, point.epochs
    config = preset(point.preset).replace(epochs=epochs, timesteps=steps, weight_bits=bits)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snnfpga-sweep-") as tmp:
        summary = train(config, load_dataset("default"), tmp, progress=False, data_label="default")
    return {"timesteps": steps, "weight_bits": bits, "epochs": epochs,
            "val_accuracy_float": summary["val_accuracy_float"], "val_accuracy_int": summary["val_accuracy_int"],
            "gap": summary["gap"], "spikes_per_neuron": summary["val_spikes_per_neuron"],
            "synaptic_ops": summary["val_synaptic_ops"], "seconds": round(time.perf_counter() - start, 1)}


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int_list, default=[1, 2, 4, 8])
    p.add_argument("--bits", type=int_list, default=[2, 3, 4, 6, 8])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scheduler", help="local (default), tcp://HOST:PORT or jobqueue:KIND[:FILE.yaml]")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    from snnfpga.errors import SnnfpgaError
    from snnfpga.executor import JobFailed, get_executor

    points = [Point(f"T{t}_b{b}", args.preset, args.epochs, t, b) for t in args.steps for b in args.bits]
    start = time.perf_counter()

    def finished(k, point, r):
        if isinstance(r, JobFailed):
            print(f"FAILED {r}", file=sys.stderr, flush=True)
        else:
            print(f"T={r['timesteps']} bits={r['weight_bits']}: float {r['val_accuracy_float']:.2f}% "
                  f"integer {r['val_accuracy_int']:.2f}% ({r['seconds']:.0f} s)", flush=True)

    try:
        with get_executor(args.scheduler, workers=args.jobs) as executor:
            results = executor.map_jobs(train_point, points, on_result=finished)
    except SnnfpgaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = [r for r in results if not isinstance(r, JobFailed)]
    command = (f"python benchmarks/accuracy_sweep.py --preset {args.preset} --epochs {args.epochs} "
               f"--steps {','.join(map(str, args.steps))} --bits {','.join(map(str, args.bits))}")
    result = {"format": "snnfpga.accuracy_sweep", "version": 1, "command": command,
              "description": f"preset {args.preset}, {args.epochs} QAT epochs each, validation split of the "
                             "bundled data, accuracies in percent",
              "accuracy_unit": "percent", "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'T':>3} " + " ".join(f"{b:>2}-bit" for b in args.bits) + "   (integer accuracy, %)")
    for t in args.steps:
        row = {r["weight_bits"]: r["val_accuracy_int"] for r in runs if r["timesteps"] == t}
        print(f"{t:>3} " + " ".join(f"{row[b]:>6.2f}" if b in row else "   n/a" for b in args.bits))
    print(f"wrote {out / 'accuracy_sweep.json'} in {time.perf_counter() - start:.0f} s")
    return 1 if len(runs) < len(points) else 0


if __name__ == "__main__":
    raise SystemExit(main())
