"""From a model to a bitstream for a real board: board top, PLL, pins, place and route, pack.

:func:`build` runs, in ``out_dir`` (relative file names only, see :mod:`snnfpga.rtl.toolchain`):

1. the board top ``snn_<board>.v`` (:class:`BoardTop`: the SPI or UART board shell of
   :mod:`snnfpga.rtl.board` clocked by the PLL module ``snn_pll.v`` of :mod:`snnfpga.rtl.pll`,
   reset held until the PLL locks, ``irq`` on an LED) and the board's pin constraints
   (``board.pcf`` / ``board.lpf``, the oscillator's frequency included, from which nextpnr
   derives the PLL output clock); with a constraints file of the user's own, the plain shell
   ``snn_board`` (ports ``clk``, ``rst``, ``spi_*``, ``irq``) clocked straight from its pins;
2. Yosys ``synth_<family>`` as :mod:`snnfpga.rtl.implement` runs it, and a fit check: a
   design the device cannot hold is refused in one line (:class:`~snnfpga.errors.MappingError`);
3. nextpnr once per placement seed, each writing its own ``.asc`` (iCE40) or ``.config``
   (ECP5); the seed with the highest Fmax is kept, and it must meet the board clock: a design
   slower than the clock it is asked to run at is an error (:class:`TimingError`), not a note;
4. ``yowasp-icepack`` (``<name>.bin``) or ``yowasp-ecppack`` (``<name>.bit``), and
   ``bitstream.json``: board, clock, Fmax per seed, resources, the bitstream's SHA-256.

Everything is deterministic: the same model, board, clock and seeds give the same bytes
(nextpnr is deterministic for a given seed). Units: MHz, seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from amaranth.hdl import Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from snnfpga.errors import ConfigError, MappingError, ToolError
from snnfpga.model.describe import describe
from snnfpga.rtl.board import PINS, SpiAccelerator, UartAccelerator, lpf_text, pcf_text, write_shell
from snnfpga.rtl.boards import LINK_PORTS, Board
from snnfpga.rtl.generate import to_verilog
from snnfpga.rtl.implement import (Progress, critical_path, fit_problems, fmax_of, place_and_route_seeds,
                                   pnr_resources, resource_fields, synth_resources, synth_script,
                                   tool_versions)
from snnfpga.rtl.pll import MODULE as PLL_MODULE
from snnfpga.rtl.pll import pll_module
from snnfpga.rtl.targets import Target
from snnfpga.rtl.toolchain import MULTIPLIER_CELLS, cell_counts, run_tool, yosys
from snnfpga.rtl.uart_bridge import divisor_for

RESULT = "bitstream.json"
RESULT_FORMAT = "snnfpga.bitstream"
PACKER = {"ice40": ("yowasp-icepack", "asc", "bin"), "ecp5": ("yowasp-ecppack", "config", "bit")}


class TimingError(ToolError):
    """Place and route did not meet the board clock on any placement seed."""


class BoardTop(wiring.Component):
    """The accelerator on a board: PLL, reset until lock, the host-link shell, ``irq`` on an LED.

    Members (:attr:`~snnfpga.rtl.boards.Board.ports`): ``osc`` (the oscillator, into the PLL),
    ``reset`` (a button, polarity from the board), the link's pins (SPI: ``spi_sck``,
    ``spi_cs_n``, ``spi_mosi`` in, ``spi_miso`` out, :class:`~snnfpga.rtl.board.SpiAccelerator`;
    UART: ``uart_rx`` in, ``uart_tx`` out, :class:`~snnfpga.rtl.board.UartAccelerator` at the
    board's baud rate for ``clock_mhz``) and ``led`` (``Out(1)``). The shell runs at the PLL
    output; its reset is the button or a PLL out of lock, released through the shell's
    two-stage synchronizer.
    """

    def __init__(self, plan, board: Board, clock_mhz: float):
        self.plan, self.board = plan, board  # generate.to_verilog reads plan.weight_storage
        if board.link == "uart":
            self.shell = UartAccelerator(plan, divisor_for(clock_mhz * 1e6, board.baud))
            link = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)}
        else:
            self.shell = SpiAccelerator(plan)
            link = {"spi_sck": In(1), "spi_cs_n": In(1, init=1), "spi_mosi": In(1), "spi_miso": Out(1)}
        super().__init__({"osc": In(1), "reset": In(1), **link, "led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        clock, locked = Signal(), Signal()
        m.submodules.pll = Instance(PLL_MODULE, i_clock_in=self.osc, o_clock_out=clock, o_locked=locked)
        m.submodules.shell = shell = self.shell
        pressed = ~self.reset if self.board.reset_active_low else self.reset
        m.d.comb += [shell.clk.eq(clock), shell.rst.eq(pressed | ~locked),
                     self.led.eq(~shell.irq if self.board.led_active_low else shell.irq)]
        for port in LINK_PORTS[self.board.link]:  # same names on the shell
            if self.signature.members[port].flow == In:
                m.d.comb += getattr(shell, port).eq(getattr(self, port))
            else:
                m.d.comb += getattr(self, port).eq(getattr(shell, port))
        return m


def board_constraints(board: Board, family: str) -> str:
    """The board's pin constraints, the oscillator's frequency on ``osc``."""
    text = pcf_text if family == "ice40" else lpf_text
    return text(board.pins, "osc", board.oscillator_mhz).replace("board shell pins", f"{board.name} pins")


_PORT_WORD = {"ice40": re.compile(r"^\s*set_io\s+(?:-\S+\s+)*(\S+)", re.MULTILINE),
              "ecp5": re.compile(r'LOCATE\s+COMP\s+"([^"]+)"', re.IGNORECASE)}


def check_user_constraints(path: Path, family: str) -> str:
    """The text of a user's constraints file for the plain shell; one line if it cannot serve."""
    suffix = {"ice40": ".pcf", "ecp5": ".lpf"}[family]
    if path.suffix.lower() != suffix:
        raise ConfigError(f"{path}: a {family} target needs a {suffix} constraints file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the constraints file {path}: {exc.strerror}") from None
    placed = {name.split("[")[0] for name in _PORT_WORD[family].findall(text)}
    missing = [p for p in PINS if p not in placed]
    if missing:
        raise ConfigError(f"{path} does not place the shell's port(s) {', '.join(missing)} "
                          f"(it needs {', '.join(PINS)})")
    return text


def build(plan, target: Target, out_dir: str | Path, *, board: Board | None = None,
          constraints: Path | None = None, clock_mhz: float | None = None, seeds: int | None = None,
          progress: Progress | None = None, timeout: float | None = None) -> dict:
    """Build the bitstream of ``plan`` for ``board`` (or a user's ``constraints`` file on
    ``target``) in ``out_dir``; return the result (also in ``bitstream.json``).

    ``clock_mhz``: the accelerator clock asked for (default: the board's, or the target's
    with a user file); with a board the PLL's achieved frequency is what is constrained and
    checked. Raises :class:`MappingError` when the design does not fit, :class:`TimingError`
    when no seed meets the clock, :class:`~snnfpga.errors.ToolError` when a tool breaks."""
    progress = progress or Progress(prefix="bitstream", enabled=False)
    where = board.title if board else f"{target.device} ({constraints})"
    weight_bits = describe(plan.artifact)["totals"]["weight_bits"]
    if weight_bits > target.memory_bits:  # before minutes of synthesis
        raise MappingError(f"{plan.artifact.name} does not fit the {where}: {weight_bits / 1000:,.0f} kbit of weights, "
                           f"{target.memory_bits / 1000:,.0f} kbit of block memory on the device in all")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = seeds or target.pnr_seeds
    start = time.time()
    family = target.family
    if board is not None:
        name, top = board.name, f"snn_{board.name.replace('-', '_')}"
        wanted = float(clock_mhz or board.clock_mhz)
        with progress.stage(f"PLL {board.oscillator_mhz:g} -> {wanted:g} MHz"):
            pll_text, clock = pll_module(family, board.oscillator_mhz, wanted)
        (out / f"{PLL_MODULE}.v").write_text(pll_text)
        with progress.stage(f"generate {top}.v ({plan.lanes_label}, weights {plan.weight_storage})"):
            (out / f"{top}.v").write_text(to_verilog(BoardTop(plan, board, clock), top))
        constraints_name = board.constraints_file
        (out / constraints_name).write_text(board_constraints(board, family))
        sources = (f"{PLL_MODULE}.v",)
    else:
        text = check_user_constraints(Path(constraints), family)
        name, top, wanted = Path(constraints).stem, "snn_board", float(clock_mhz or target.clock_mhz)
        clock = wanted
        with progress.stage(f"generate {top}.v ({plan.lanes_label}, weights {plan.weight_storage})"):
            write_shell(plan, out, top)
        constraints_name = f"user{Path(constraints).suffix.lower()}"
        (out / constraints_name).write_text(text)
        sources = ()

    with progress.stage(f"yosys synth_{family}"):
        yosys(synth_script(target, plan, top, sources), out, "yosys", timeout)
    cells = cell_counts((out / "stat.txt").read_text())
    rtl_cells = cell_counts((out / "stat_rtl.txt").read_text())
    multipliers = {c: n for c, n in {**rtl_cells, **cells}.items() if c in MULTIPLIER_CELLS}
    res = synth_resources(target, cells)
    problems = fit_problems(target, res)
    if problems:
        raise MappingError(f"{plan.artifact.name} does not fit the {where}: {'; '.join(problems)}")

    packer, routed_ext, bit_ext = PACKER[family]
    routed_flag = "--asc" if family == "ice40" else "--textcfg"
    reports, no_fit = place_and_route_seeds(
        target, out, clock, seeds, progress, timeout, top=top, constraints=constraints_name,
        outputs=lambda seed: [routed_flag, f"{name}_s{seed}.{routed_ext}"])
    if not reports:
        raise MappingError(f"{plan.artifact.name} does not place and route on the {where}: {no_fit}")
    fmax_by_seed = {s: fmax_of(r)[0] for s, r in reports.items()}
    seed = max(reports, key=lambda s: (fmax_by_seed[s] or 0.0, -s))
    fmax = fmax_by_seed[seed]
    listed = ", ".join(f"seed {s}: {f} MHz" for s, f in sorted(fmax_by_seed.items()))
    if fmax is None or fmax < clock:
        raise TimingError(f"timing not met at the {clock:g} MHz board clock: best Fmax {fmax} MHz ({listed}); "
                          f"ask for a lower clock with --clock (logs in {out})")
    routed = f"{name}.{routed_ext}"
    shutil.copyfile(out / f"{name}_s{seed}.{routed_ext}", out / routed)
    shutil.copyfile(out / f"report_s{seed}.json", out / "report.json")
    bitfile = f"{name}.{bit_ext}"
    with progress.stage(f"{packer} {routed} -> {bitfile}"):
        run_tool([packer, routed, bitfile], out, "pack.log", timeout)
    data = (out / bitfile).read_bytes()
    resources = {**res, **pnr_resources(target, reports[seed])}
    result = {
        "format": RESULT_FORMAT,
        "board": board.name if board else None,
        "board_title": board.title if board else None,
        "constraints": constraints_name,
        "target": target.name,
        "device": target.device,
        "model": plan.artifact.name,
        "top": top,
        "lanes_label": plan.lanes_label,
        "weight_storage": plan.weight_storage,
        "oscillator_mhz": board.oscillator_mhz if board else None,
        "clock_requested_mhz": wanted,
        "clock_mhz": clock,
        "fmax_mhz": fmax,
        "slack_mhz": round(fmax - clock, 2),
        "seed": seed,
        "fmax_by_seed": {str(s): f for s, f in sorted(fmax_by_seed.items())},
        "critical_path": critical_path(reports[seed]),
        "multipliers": sum(multipliers.values()),
        **resource_fields(target, res, resources),
        "bitstream": bitfile,
        "bitstream_bytes": len(data),
        "bitstream_sha256": hashlib.sha256(data).hexdigest(),
        "loader": list(board.loader) if board else None,
        "tools": tool_versions(),
        "wall_s": round(time.time() - start, 1),
    }
    (out / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_result(out_dir: str | Path) -> dict:
    """``bitstream.json`` of a build directory, checked; one line when it is not one."""
    path = Path(out_dir) / RESULT
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{out_dir} holds no bitstream build ({RESULT} missing): run snnfpga bitstream") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is unreadable or corrupt: {exc}") from None
    if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT:
        raise ConfigError(f"{path} is not a bitstream build description")
    bitfile = Path(out_dir) / str(result.get("bitstream"))
    if not bitfile.is_file():
        raise ConfigError(f"the bitstream {bitfile} is missing")
    if hashlib.sha256(bitfile.read_bytes()).hexdigest() != result.get("bitstream_sha256"):
        raise ConfigError(f"the bitstream {bitfile} does not match {RESULT} (changed after the build?)")
    return result

