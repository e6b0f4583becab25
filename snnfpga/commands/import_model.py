"""``snnfpga import``: read a NIR file into a model directory that every command accepts.

    snnfpga import FILE.nir --out DIR [--framework snntorch|norse|sinabs|generic] [--dt S]
                   [--reset zero|subtract|subtract_next] [--encoder rate|threshold]
                   [--encoder-param N] [--timesteps T] [--weight-bits B] [--data FILE]
                   [--finetune-epochs N] [--json]

A NIR file that snnfpga exported (``snnfpga export``) comes back as the identical artifact
(the same ``manifest.json`` and ``arrays.npz`` bytes). A network trained elsewhere is
discretised with its framework's conventions (time step, fire comparison, reset; ``--dt``
and ``--reset`` override them), its weights, biases and thresholds quantized to
``--weight-bits`` (default 8), with the encoder and T that NIR does not store
(``--encoder``, ``--encoder-param``: the rate encoder's phase or the threshold encoder's
level, ``--timesteps``); with ``--data`` the weight clipping of each layer is calibrated on
1,000 of its training images and the float and integer accuracy on its validation split are
printed, and ``--finetune-epochs N`` fine-tunes the integers on its training split
(the integer accuracy before and after printed). A graph is read from its ``Input`` to its ``Output`` as dense layers; a
node, edge or shape the contract cannot hold is refused in one line naming the node
(docs/nir.md). Needs ``pip install 'snnfpga[nir]'``.
"""

from __future__ import annotations

import sys

from snnfpga.commands.common import emit_json, positive_float, positive_int

CALIBRATION_IMAGES = 1000  # training images the quantization is calibrated on (--data)


def add_parser(subparsers) -> None:
    from snnfpga.model.kinds.lif import RESETS
    from snnfpga.model.nir_foreign import FRAMEWORKS

    p = subparsers.add_parser("import", help="read a NIR file into a model directory",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", metavar="FILE.nir", help="the NIR file")
    p.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    p.add_argument("--framework", default="generic", choices=FRAMEWORKS,
                   help="the framework that wrote the file (its discretisation; default generic)")
    p.add_argument("--dt", type=positive_float, metavar="S", help="time step in seconds (default: the framework's)")
    p.add_argument("--reset", choices=RESETS, help="reset mechanism (default: the framework's)")
    p.add_argument("--encoder", choices=("rate", "threshold"), help="pixel encoder (a network trained elsewhere)")
    p.add_argument("--encoder-param", type=int, default=128, metavar="N",
                   help="the rate encoder's phase or the threshold encoder's level (default 128)")
    p.add_argument("--timesteps", type=positive_int, metavar="T", help="time steps per image")
    p.add_argument("--weight-bits", type=positive_int, default=8, metavar="B", help="weight bits (default 8)")
    p.add_argument("--data", metavar="FILE", help="images to print the float and integer accuracy on (val split)")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune the integers for N epochs on the training split of --data (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from snnfpga.model import nir_format as F
    from snnfpga.model.artifact import Encoder, arrays_sha256, save_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_foreign import import_foreign
    from snnfpga.model.nir_import import exported_artifact, read_graph

    from snnfpga.errors import ConfigError

    if args.finetune_epochs < 0:
        raise ConfigError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
    if args.finetune_epochs and not args.data:
        raise ConfigError("--finetune-epochs needs --data (the images to fine-tune on)")
    graph = read_graph(args.file)
    summary = {}
    if F.MANIFEST_KEY in graph.metadata:
        if args.finetune_epochs:
            raise ConfigError(f"{args.file} is an snnfpga export: it imports back as it was, without a fine-tune")
        art = exported_artifact(graph, str(args.file))
    else:  # the encoder's parameter is checked with the artifact's header
        encoder = None if args.encoder is None else (Encoder("rate", phase=args.encoder_param)
                                                     if args.encoder == "rate"
                                                     else Encoder("threshold", level=args.encoder_param))
        options = dict(dt=args.dt, reset=args.reset, encoder=encoder, timesteps=args.timesteps,
                       weight_bits=args.weight_bits, name=Path(args.out).name or "imported")
        dataset = load_dataset(args.data) if args.data else None  # calibrate on its training images
        calibration = None if dataset is None else dataset.split("train").limit(CALIBRATION_IMAGES).images
        fi = import_foreign(graph, str(args.file), args.framework, calibration=calibration, **options)
        art = fi.artifact
        for note in fi.notes:
            print(f"note: {note}", file=sys.stderr)
        summary.update(framework=args.framework, fire=fi.fire, reset=fi.reset, notes=list(fi.notes))
        if dataset is not None:
            summary.update(_accuracies(fi, dataset))
            print(f"accuracy on {summary['n']} validation images: float {summary['accuracy_float']:.2f}%, integer "
                  f"{summary['accuracy_int']:.2f}% ({summary['accuracy_int'] - summary['accuracy_float']:+.2f} "
                  "points)", file=sys.stderr)
        if args.finetune_epochs:
            art = _finetune(art, dataset, args.finetune_epochs, summary)
    out = save_artifact(art, args.out)
    print(f"imported {args.file} as {art.name} ({'-'.join(map(str, art.sizes))}, T={art.timesteps}) into {out}",
          file=sys.stderr)
    if args.json:
        emit_json({"model": art.name, "out": str(out), "sizes": art.sizes, "timesteps": art.timesteps,
                   "arrays_sha256": arrays_sha256(art), **summary})
    return 0


def _accuracies(fi, dataset) -> dict:
    """Float (the discretised NIR network) and integer accuracy on the validation split."""
    import numpy as np

    from snnfpga.model.nir_foreign import float_forward
    from snnfpga.sim import reference

    val = dataset.split("val")
    trace = reference.run(fi.artifact, val.images)
    spikes = trace.spikes[0].reshape(len(val.images), fi.artifact.timesteps, -1)
    floats = float_forward(fi, spikes)
    labels = np.asarray(val.labels)
    return {"n": int(len(labels)), "accuracy_float": round(100.0 * float((floats.argmax(1) == labels).mean()), 2),
            "accuracy_int": round(100.0 * float((trace.classes == labels).mean()), 2),
            "same_class": round(100.0 * float((floats.argmax(1) == trace.classes).mean()), 2)}


def _finetune(art, dataset, epochs: int, summary: dict):
    """Fine-tune on the training split; record and print the validation accuracy after it."""
    import numpy as np

    from snnfpga.model.import_finetune import finetune
    from snnfpga.sim import reference

    train, val = dataset.split("train"), dataset.split("val")
    print(f"fine-tuning the integers for {epochs} epoch(s) on {len(train.labels)} training images", file=sys.stderr)
    tuned = finetune(art, train.images, np.asarray(train.labels), epochs,
                     progress=lambda e, loss: print(f"  epoch {e + 1}/{epochs}: loss {loss:.4f}", file=sys.stderr))
    after = round(100.0 * float((reference.run(tuned, val.images, record=False).classes
                                 == np.asarray(val.labels)).mean()), 2)
    summary.update(finetune_epochs=epochs, accuracy_int_finetuned=after)
    print(f"after the fine-tune: integer {after:.2f}% ({after - summary['accuracy_int']:+.2f} points against the "
          f"import, {after - summary['accuracy_float']:+.2f} against float)", file=sys.stderr)
    return tuned
