"""Issue 14's targets: an snnTorch 784-128-10 Leaky network through NIR into the contract.

    python benchmarks/nir_snntorch.py [--hidden 128] [--epochs 5] [--sim 100] [--simulator verilator]
                                      [--readout count|sum] [--out DIR] [--json]

Trains the network in snnTorch on the bundled training split (beta 0.5, threshold 1,
snnTorch's subtract reset, binary input ``pixel >= 128``, T = 8, a spiking output decided by
spike count with ties broken by membrane; ``--readout sum``: summed logits instead; about
5 s per epoch on 2 cores), exports it with snnTorch's own exporter, then runs the command
line a user runs: ``snnfpga import --framework snntorch --weight-bits 8`` and ``snnfpga
export --format nir`` (timed together, as processes: the target is under 10 s), and
``snnfpga sim`` on the first ``--sim`` validation images (0 to skip; target 0 mismatches).
Prints snnTorch's own accuracy on the validation split (its forward pass, its decision)
beside the integer reference's (target: within 0.5 points).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args) -> tuple[dict, float]:
    """Run ``snnfpga ARGS --json``; its JSON and its wall time (s)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snnfpga.cli", *map(str, args), "--json"], capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"snnfpga {' '.join(map(str, args))} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def main(argv=None) -> int:
    import numpy as np

    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.snntorch_net import train_leaky_mlp
    from snnfpga.sim import reference

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--readout", choices=("count", "sum"), default="count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sim", type=int, default=100, metavar="N", help="validation images in RTL simulation (0: none)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--out", metavar="DIR", help="keep the NIR files and the model directory here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    data = load_dataset("default")
    train, val = data.split("train"), data.split("val")
    start = time.perf_counter()
    model = train_leaky_mlp(train.images, np.asarray(train.labels), hidden=args.hidden, steps=args.steps,
                            spiking_output=args.readout == "count", epochs=args.epochs, seed=args.seed,
                            progress=lambda e, loss: print(f"epoch {e + 1}/{args.epochs}: loss {loss:.3f}",
                                                           file=sys.stderr))
    train_s = time.perf_counter() - start
    truth = np.asarray(val.labels)
    float_classes = model.classes(val.images)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model.export_nir(work / "snntorch.nir")
        imported, import_s = _cli("import", work / "snntorch.nir", "--out", work / "model", "--framework", "snntorch",
                                  "--encoder", "threshold", "--encoder-param", 128, "--timesteps", args.steps,
                                  "--weight-bits", 8)
        _, export_s = _cli("export", work / "model", "--format", "nir", "--out", work / "model.nir")
        art = load_artifact(work / "model")
        int_classes = reference.run(art, val.images, record=False).classes
        sim = _cli("sim", work / "model", "--data", "default", "--split", "val", "--limit", args.sim,
                   "--simulator", args.simulator)[0] if args.sim else None
    float_acc, int_acc = 100 * float((float_classes == truth).mean()), 100 * float((int_classes == truth).mean())
    result = {
        "network": f"784-{args.hidden}-10", "readout": args.readout, "timesteps": args.steps, "epochs": args.epochs,
        "train_s": round(train_s, 1), "validation_images": int(len(truth)),
        "accuracy_snntorch": round(float_acc, 2), "accuracy_int": round(int_acc, 2),
        "accuracy_change": round(int_acc - float_acc, 2),
        "same_class": round(100 * float((float_classes == int_classes).mean()), 2),
        "import_s": round(import_s, 2), "export_s": round(export_s, 2),
        "import_plus_export_s": round(import_s + export_s, 2), "output_kind": art.layers[-1].kind,
        "notes": imported.get("notes", []),
        "rtl": None if sim is None else {"simulator": args.simulator, "images": sim["n"],
                                         "mismatches": sim["mismatches"], "errors": sim["errors"]},
    }
    print(f"snnTorch {result['network']} ({args.readout} readout, T={args.steps}), trained {train_s:.0f} s")
    print(f"  validation accuracy: snnTorch {float_acc:.2f}%, integer (8-bit) {int_acc:.2f}% "
          f"({int_acc - float_acc:+.2f} points; target within 0.5), same class {result['same_class']:.2f}%")
    print(f"  snnfpga import {import_s:.2f} s + export {export_s:.2f} s = {import_s + export_s:.2f} s (target < 10 s)")
    if sim is not None:
        print(f"  RTL ({args.simulator}): {sim['n']} images, {sim['mismatches']} mismatches (target 0)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
