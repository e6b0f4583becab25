"""``snnfpga describe``: the graph of a model: nodes, shapes, weights, widths, bounds, memory.

    snnfpga describe MODEL [--json]

``MODEL`` is a model directory or a shipped model's name. Widths are declared register
widths in bits; bounds are the proven ranges of each node's registers over every input
and step; memory is weights and biases, thresholds and state, in bits.
"""

from __future__ import annotations

from snnfpga.commands.common import emit_json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("describe", help="print a model's graph: nodes, shapes, weights, widths, bounds, memory",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL", help="model directory, or a shipped model (default, tiny, mixer, ...)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.describe import describe, format_lines

    desc = describe(load_artifact(args.model))
    print("\n".join(format_lines(desc)))
    if args.json:
        emit_json(desc)
    return 0
