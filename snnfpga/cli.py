"""The ``snnfpga`` command line.

Each sub-command lives in its own module under :mod:`snnfpga.commands` and provides
``add_parser(subparsers)`` and ``run(args) -> int``. Errors the user can cause are
:class:`~snnfpga.errors.SnnfpgaError` and are printed as one line (``error: ...``) with a
non-zero exit status and no traceback. With ``--json`` a command prints exactly one JSON
object as the last line of its standard output; progress goes to standard error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from snnfpga import __version__
from snnfpga.errors import SnnfpgaError

# Order is the order of the flow; each name is a module in snnfpga.commands.
COMMANDS = ("train", "eval", "describe", "verilog", "sim", "synth", "bitstream", "program", "infer", "report",
            "sweep", "firmware", "run", "export", "import_model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snnfpga",
        description="Spiking MLPs from PyTorch to bit-exact, multiplication-free FPGA Verilog.")
    parser.add_argument("--version", action="version", version=f"snnfpga {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"snnfpga.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"snnfpga.commands.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SnnfpgaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
