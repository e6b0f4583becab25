"""The board clock: a PLL module from the FPGA family's own calculator.

The divider settings come from the tools that ship with the YoWASP nextpnr packages,
``yowasp-icepll`` (iCE40 ``SB_PLL40_PAD``: the oscillator pin drives the PLL directly) and
``yowasp-ecppll`` (ECP5 ``EHXPLLL``), not from a solver of our own: they know the VCO,
phase-detector and filter limits of their parts. :func:`pll_module` writes the module
(``snn_pll``: ports ``clock_in``, ``clock_out``, ``locked``) and returns the frequency it
achieves, which is the nearest the PLL can make to the request (possibly a little above
it; the build then constrains and checks timing at the achieved figure).

Units: MHz throughout. The text is deterministic (same request, same bytes).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from snnfpga.errors import ConfigError, ToolError
from snnfpga.rtl.toolchain import run_tool

MODULE = "snn_pll"
PORTS = ("clock_in", "clock_out", "locked")
# What each calculator can make (its parts' output range), checked before it runs.
OUTPUT_RANGE_MHZ = {"ice40": (16.0, 275.0), "ecp5": (3.125, 400.0)}
_ACHIEVED = {"ice40": re.compile(r"Achieved output frequency:\s*([0-9.]+) MHz"),
             "ecp5": re.compile(r'FREQUENCY_PIN_CLKOP="([0-9.]+)"')}


def pll_module(family: str, input_mhz: float, output_mhz: float) -> tuple[str, float]:
    """``(verilog_text, achieved_mhz)`` of :data:`MODULE` for ``family`` (``ice40``, ``ecp5``)."""
    lo, hi = OUTPUT_RANGE_MHZ[family]
    if not lo <= output_mhz <= hi:
        raise ConfigError(f"a {family} PLL makes {lo:g} to {hi:g} MHz; {output_mhz:g} MHz was asked for")
    name = "snn_pll.v"
    with tempfile.TemporaryDirectory(prefix="snnfpga-pll-") as tmp:
        work = Path(tmp)
        if family == "ice40":
            argv = ["yowasp-icepll", "-i", f"{input_mhz:g}", "-o", f"{output_mhz:g}", "-p", "-m", "-n", MODULE,
                    "-f", name, "-q"]
        else:
            argv = ["yowasp-ecppll", "-i", f"{input_mhz:g}", "-o", f"{output_mhz:g}", "-n", MODULE,
                    "--clkin_name", PORTS[0], "--clkout0_name", PORTS[1], "-f", name]
        run_tool(argv, work, "pll.log")
        path = work / name
        if not path.exists():
            raise ToolError(f"{argv[0]} wrote no PLL module for {input_mhz:g} -> {output_mhz:g} MHz; "
                            f"its output: {(work / 'pll.log').read_text(errors='replace').strip()[-200:]}")
        text = path.read_text()
    match = _ACHIEVED[family].search(text)
    if match is None:
        raise ToolError(f"{argv[0]}: cannot read the achieved frequency from its module")
    if not all(re.search(rf"\b{port}\b", text) for port in PORTS):
        raise ToolError(f"{argv[0]}: its module lacks one of the ports {', '.join(PORTS)}")
    return text, float(match.group(1))
