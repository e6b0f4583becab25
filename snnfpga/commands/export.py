"""``snnfpga export``: write a model as NIR, with golden traces of a few images.

    snnfpga export MODEL --format nir --out FILE.nir [--data FILE] [--images N] [--json]

Writes ``FILE.nir`` (``nir.write``: the layers, or a layer graph's path of conv, lif,
flatten, pool, dense and output nodes, as NIR nodes with ``dt = 1``, the integer contract in
the graph's metadata; docs/nir.md) and ``FILE.golden.nir`` (``nir.write_data``:
the reference's spikes of every spiking layer and the scores on the first ``N`` validation
images of ``--data``, default the bundled data's first 4). Deterministic: the same model and
images give the same bytes. Needs ``pip install 'snnfpga[nir]'``.
"""

from __future__ import annotations

import sys

from snnfpga.commands.common import emit_json, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a model as NIR (with golden spike traces)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL", help="model directory, or a shipped model (a chain, or a path of conv, "
                   "lif, flatten, pool and dense nodes)")
    p.add_argument("--format", required=True, choices=("nir",), help="output format (nir)")
    p.add_argument("--out", required=True, metavar="FILE.nir", help="the NIR file to write")
    p.add_argument("--data", default="default", metavar="FILE",
                   help="images for the golden traces: .npz, MNIST IDX, or 'default' (the bundled data)")
    p.add_argument("--images", type=positive_int, default=4, metavar="N",
                   help="golden traces of the first N validation images (default 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from snnfpga.errors import DataError
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_export import export_nir

    art = load_artifact(args.model)
    images = load_dataset(args.data).split("val").limit(args.images).images
    if tuple(images.shape[1:]) != tuple(art.input_shape):
        raise DataError(f"{args.data}: images are {images.shape[1]}x{images.shape[2]}, {art.name} takes "
                        f"{art.input_shape[0]}x{art.input_shape[1]}")
    result = export_nir(art, args.out, images)
    print(f"exported {art.name} to {result['nir']} ({result['nodes']} NIR nodes), golden traces of "
          f"{result['images']} images in {result['golden']}", file=sys.stderr)
    if args.json:
        emit_json({"model": art.name, "format": "nir", **result})
    return 0
