"""``snnfpga import``: read a NIR file into a model directory that every command accepts.

    snnfpga import FILE.nir --out DIR [--framework snntorch|norse|sinabs|generic] [--json]

A NIR file that snnfpga exported (``snnfpga export``) comes back as the identical artifact
(the same ``manifest.json`` and ``arrays.npz`` bytes). A graph is read from its ``Input`` to
its ``Output`` as dense layers (``Affine``/``Linear`` then ``LIF``/``IF``/``LI``/``I``); a node,
edge or shape the contract cannot hold is refused in one line naming the node. Networks
trained elsewhere (their framework's discretisation, quantization to integers) are not
imported yet (docs/nir.md). Needs ``pip install 'snnfpga[nir]'``.
"""

from __future__ import annotations

import sys

from snnfpga.commands.common import emit_json


def add_parser(subparsers) -> None:
    from snnfpga.model.nir_import import FRAMEWORKS

    p = subparsers.add_parser("import", help="read a NIR file into a model directory",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("file", metavar="FILE.nir", help="the NIR file")
    p.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    p.add_argument("--framework", default="generic", choices=FRAMEWORKS,
                   help="the framework that wrote the file (its discretisation; default generic)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from snnfpga.model.artifact import arrays_sha256, save_artifact
    from snnfpga.model.nir_import import import_nir

    art = import_nir(args.file, args.framework)
    out = save_artifact(art, args.out)
    print(f"imported {args.file} as {art.name} ({'-'.join(map(str, art.sizes))}, T={art.timesteps}) into {out}",
          file=sys.stderr)
    if args.json:
        emit_json({"model": art.name, "out": str(out), "sizes": art.sizes, "timesteps": art.timesteps,
                   "arrays_sha256": arrays_sha256(art)})
    return 0
