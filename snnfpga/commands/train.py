"""``snnfpga train``: QAT, fold, integer fine-tune and export of a model directory.

    snnfpga train --data FILE --out DIR [--preset NAME] [--epochs N] [--seed S]

``FILE`` is an ``.npz``/MNIST IDX file or ``default`` (the bundled 8,000 images); training
uses its train split and reports on its validation split (the last eighth). ``DIR``
receives manifest.json, arrays.npz, checkpoint.pt and training.json; the same command
gives the same bytes. A progress bar goes to standard error.

``torchrun --nproc-per-node N -m snnfpga train ...`` trains data-parallel over N processes
(snnfpga/model/distributed.py, docs/scale-out.md); rank 0 writes ``DIR`` and prints.
"""

from __future__ import annotations

import time
from pathlib import Path

from snnfpga.commands.common import emit_json, positive_int
from snnfpga.errors import ConfigError


def add_parser(subparsers) -> None:
    from snnfpga.model.config import PRESETS

    p = subparsers.add_parser("train", help="train a spiking MLP (QAT), fold, fine-tune, export the integer artifact",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, metavar="FILE", help="training data: .npz, MNIST IDX images file, or 'default'")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="configuration preset (default: default)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="QAT epochs (default: the preset's)")
    p.add_argument("--finetune-epochs", type=int, metavar="N", help="integer fine-tune epochs (default: the preset's)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default: the preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line (last line of stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from snnfpga.model.config import preset
    from snnfpga.model.data import load_dataset

    config = preset(args.preset)
    changes = {k: v for k, v in (("epochs", args.epochs), ("finetune_epochs", args.finetune_epochs),
                                 ("seed", args.seed)) if v is not None}
    config = config.replace(**changes)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if args.finetune_epochs is not None and args.finetune_epochs < 0:
        raise ConfigError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
    dataset = load_dataset(args.data)
    from snnfpga.model import distributed
    from snnfpga.model.train import train  # torch and Brevitas load here, after the cheap checks

    start = time.perf_counter()
    parallel = distributed.setup()  # torchrun with several processes
    try:
        summary = train(config, dataset, out, progress=not args.no_progress,
                        data_label=args.data if args.data == "default" else Path(args.data).name)
    finally:
        if parallel:
            distributed.teardown()
    if summary is None:  # a rank other than 0: rank 0 writes and reports
        return 0
    seconds = time.perf_counter() - start
    ranks = f", {summary['data_parallel']['world_size']} processes" if "data_parallel" in summary else ""
    print(f"model {config.name}: {out}/  ({summary['data']['train_images']} training images, "
          f"{config.epochs} QAT + {config.finetune_epochs} fine-tune epochs, {seconds:.1f} s{ranks})")
    print(f"validation ({summary['data']['val_images']} images): float {summary['val_accuracy_float']:.2f}%  "
          f"integer {summary['val_accuracy_int']:.2f}%  gap {summary['gap']:+.2f} points")
    print(f"spikes per hidden neuron {summary['val_spikes_per_neuron']:.3f}  "
          f"synaptic ops/image {summary['val_synaptic_ops']:.0f}")
    if args.json:
        emit_json({"out": str(out), "preset": config.name, "epochs": config.epochs, "seed": config.seed,
                   "accuracy_unit": "percent", "val_accuracy_float": summary["val_accuracy_float"],
                   "val_accuracy_int": summary["val_accuracy_int"], "gap": summary["gap"],
                   "spikes_per_neuron": summary["val_spikes_per_neuron"],
                   "synaptic_ops": summary["val_synaptic_ops"], "wall_s": round(seconds, 1)})
    return 0
