"""``snnfpga import``: read a NIR file into a model directory that every command accepts.

    snnfpga import FILE.nir --out DIR [--framework snntorch|norse|sinabs|generic] [--dt S]
                   [--reset zero|subtract|subtract_next] [--encoder rate|threshold]
                   [--encoder-param N] [--timesteps T] [--weight-bits B] [--data FILE] [--json]

A NIR file that snnfpga exported (``snnfpga export``) comes back as the identical artifact
(the same ``manifest.json`` and ``arrays.npz`` bytes). A network trained elsewhere is
discretised with its framework's conventions (time step, fire comparison, reset; ``--dt``
and ``--reset`` override them), its weights, biases and thresholds quantized to
``--weight-bits`` (default 8), with the encoder and T that NIR does not store
(``--encoder``, ``--encoder-param``: the rate encoder's phase or the threshold encoder's
level, ``--timesteps``); with ``--data`` the float and integer accuracy on its validation
split are printed. A graph is read from its ``Input`` to its ``Output`` as dense layers; a
node, edge or shape the contract cannot hold is refused in one line naming the node
(docs/nir.md). Needs ``pip install 'snnfpga[nir]'``.
"""

from __future__ import annotations

import sys

from snnfpga.commands.common import emit_json, positive_float, positive_int


def add_parser(subparsers) -> None:
    from snnfpga.model.kinds.lif import RESETS
    from snnfpga.model.nir_import import FRAMEWORKS

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
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from snnfpga.model import nir_format as F
    from snnfpga.model.artifact import Encoder, arrays_sha256, save_artifact
    from snnfpga.model.nir_import import exported_artifact, import_foreign, read_graph

    graph = read_graph(args.file)
    summary = {}
    if F.MANIFEST_KEY in graph.metadata:
        art = exported_artifact(graph, str(args.file))
    else:  # the encoder's parameter is checked with the artifact's header
        encoder = None if args.encoder is None else (Encoder("rate", phase=args.encoder_param)
                                                     if args.encoder == "rate"
                                                     else Encoder("threshold", level=args.encoder_param))
        fi = import_foreign(graph, str(args.file), args.framework, dt=args.dt, reset=args.reset, encoder=encoder,
                            timesteps=args.timesteps, weight_bits=args.weight_bits,
                            name=Path(args.out).name or "imported")
        art = fi.artifact
        for note in fi.notes:
            print(f"note: {note}", file=sys.stderr)
        summary.update(framework=args.framework, fire=fi.fire, reset=fi.reset, notes=list(fi.notes))
        if args.data:
            summary.update(_accuracies(fi, args.data))
            print(f"accuracy on {summary['n']} validation images: float {summary['accuracy_float']:.2f}%, integer "
                  f"{summary['accuracy_int']:.2f}% ({summary['accuracy_int'] - summary['accuracy_float']:+.2f} "
                  "points)", file=sys.stderr)
    out = save_artifact(art, args.out)
    print(f"imported {args.file} as {art.name} ({'-'.join(map(str, art.sizes))}, T={art.timesteps}) into {out}",
          file=sys.stderr)
    if args.json:
        emit_json({"model": art.name, "out": str(out), "sizes": art.sizes, "timesteps": art.timesteps,
                   "arrays_sha256": arrays_sha256(art), **summary})
    return 0


def _accuracies(fi, data: str) -> dict:
    """Float (the discretised NIR network) and integer accuracy on the validation split."""
    import numpy as np

    from snnfpga.errors import DataError
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_import import float_forward
    from snnfpga.sim import reference

    val = load_dataset(data).split("val")
    if tuple(val.images.shape[1:]) != tuple(fi.artifact.input_shape):
        raise DataError(f"{data}: images are {val.images.shape[1]}x{val.images.shape[2]}, the network takes "
                        f"{fi.artifact.input_shape[0]}x{fi.artifact.input_shape[1]}")
    trace = reference.run(fi.artifact, val.images)
    spikes = trace.spikes[0].reshape(len(val.images), fi.artifact.timesteps, -1)
    floats = float_forward(fi, spikes)
    labels = np.asarray(val.labels)
    return {"n": int(len(labels)), "accuracy_float": round(100.0 * float((floats.argmax(1) == labels).mean()), 2),
            "accuracy_int": round(100.0 * float((trace.classes == labels).mean()), 2),
            "same_class": round(100.0 * float((floats.argmax(1) == trace.classes).mean()), 2)}
