"""Board shell: the accelerator system behind an SPI bridge, with few pins.

``SpiAccelerator`` = :class:`~snnfpga.rtl.spi_bridge.SpiWishboneBridge` +
:class:`~snnfpga.rtl.system.AcceleratorSystem`. Its ports are ``clk``, ``rst``, the four SPI
pins (``spi_sck``, ``spi_cs_n``, ``spi_mosi``, ``spi_miso``) and ``irq``: seven pins, so the
same top level fits every package (an iCE40 UP5K in the 48-pin SG48 has 39 user IO).
``rst`` is a board signal (a button, a host GPIO): it resets everything at once and is
released through a two-stage reset synchronizer, so the reset that the logic sees is
synchronous to ``clk`` and its fan-out is a timed path. A host
microcontroller drives it with the register map of :mod:`snnfpga.firmware.regmap` over SPI
(protocol in :mod:`snnfpga.rtl.spi_bridge`).

:func:`write_shell` writes ``<top>.v`` (deterministic, as :mod:`snnfpga.rtl.generate`) and
``<top>.json`` (ports, plan parameters, the cycle model), and :func:`pcf_text` / :func:`lpf_text`
the pin constraints (iCE40 PCF, ECP5 LPF) of a target's pin table.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from snnfpga import __version__
from snnfpga.firmware import regmap as R
from snnfpga.model.artifact import arrays_sha256
from snnfpga.rtl.csr import check_mappable
from snnfpga.rtl.generate import to_verilog
from snnfpga.rtl.spi_bridge import COMMANDS, SpiWishboneBridge
from snnfpga.rtl.system import AcceleratorSystem
from snnfpga.rtl.uart_bridge import UartWishboneBridge

PINS = ("clk", "rst", "spi_sck", "spi_cs_n", "spi_mosi", "spi_miso", "irq")
PIN_MEANINGS = {
    "clk": "clock input (all logic in this one domain)",
    "rst": "reset, active high, asynchronous (synchronized inside; released two clk cycles after it falls)",
    "spi_sck": "SPI clock from the host, mode 0, at most clk / 4",
    "spi_cs_n": "SPI chip select, active low",
    "spi_mosi": "SPI data host -> accelerator",
    "spi_miso": "SPI data accelerator -> host (always driven)",
    "irq": "interrupt: result available and enabled (STATUS.DONE & IRQ_ENABLE)",
}
DESCRIPTION_FORMAT = "snnfpga.shell"


class SpiAccelerator(wiring.Component):
    """Members
    -------
    clk : ``In(1)``
        The clock of the ``sync`` domain (all logic).
    rst : ``In(1)``
        Board reset, asynchronous; drives the ``sync`` domain's reset through a
        :class:`~amaranth.lib.cdc.ResetSynchronizer`.
    spi_sck, spi_cs_n, spi_mosi : ``In(1)``
        SPI pins from the host (asynchronous; synchronised inside).
    spi_miso : ``Out(1)``
    irq : ``Out(1)``
    """

    def __init__(self, plan):
        check_mappable(plan)  # before elaboration: a plan the register block cannot take fails here
        self.plan = plan  # generate.to_verilog reads plan.weight_storage
        super().__init__({"clk": In(1), "rst": In(1), "spi_sck": In(1), "spi_cs_n": In(1, init=1), "spi_mosi": In(1),
                          "spi_miso": Out(1), "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")  # clock from the clk port, reset from rst
        m.d.comb += sync.clk.eq(self.clk)
        m.submodules.reset_sync = ResetSynchronizer(self.rst, domain="sync")
        m.submodules.bridge = bridge = SpiWishboneBridge(R.ADDRESS_BITS)
        m.submodules.system = system = AcceleratorSystem(self.plan)
        wiring.connect(m, bridge.bus, system.bus)
        m.d.comb += [bridge.spi.sck.eq(self.spi_sck), bridge.spi.cs_n.eq(self.spi_cs_n),
                     bridge.spi.mosi.eq(self.spi_mosi), self.spi_miso.eq(bridge.spi.miso),
                     self.irq.eq(system.irq)]
        return m


class UartAccelerator(wiring.Component):
    """The same system behind a UART bridge (:mod:`snnfpga.rtl.uart_bridge`): for boards whose
    USB chip is a plain UART. Ports ``clk``, ``rst``, ``uart_rx`` (``In(1)``, idles high),
    ``uart_tx`` (``Out(1)``) and ``irq``; ``divisor`` clock cycles per bit
    (:func:`~snnfpga.rtl.uart_bridge.divisor_for`)."""

    def __init__(self, plan, divisor: int):
        check_mappable(plan)
        self.plan, self.divisor = plan, divisor
        super().__init__({"clk": In(1), "rst": In(1), "uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                          "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += sync.clk.eq(self.clk)
        m.submodules.reset_sync = ResetSynchronizer(self.rst, domain="sync")
        m.submodules.bridge = bridge = UartWishboneBridge(R.ADDRESS_BITS, self.divisor)
        m.submodules.system = system = AcceleratorSystem(self.plan)
        wiring.connect(m, bridge.bus, system.bus)
        m.d.comb += [bridge.uart.rx.eq(self.uart_rx), self.uart_tx.eq(bridge.uart.tx), self.irq.eq(system.irq)]
        return m


def write_shell(plan, out_dir: str | Path, top: str = "snn_board") -> dict:
    """Write ``<top>.v`` and ``<top>.json`` into ``out_dir``; return the description."""
    dut = SpiAccelerator(plan)
    text = to_verilog(dut, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{top}.v").write_text(text)
    art = plan.artifact
    description = {
        "format": DESCRIPTION_FORMAT,
        "version": 1,
        "top": top,
        "files": [f"{top}.v"],
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "generator": {"snnfpga": __version__, "amaranth": version("amaranth")},
        "artifact": {"name": art.name, **({"sizes": art.sizes} if art.is_chain else {"graph": True}),
                     "arrays_sha256": arrays_sha256(art)},
        "interface": "spi (mode 0) -> Wishbone -> register block, see docs/implementation.md",
        "spi_commands": {f"0x{k:02X}": v for k, v in COMMANDS.items()},
        "parameters": plan.parameters(),
        "ports": [{"name": p, "direction": "output" if p in ("spi_miso", "irq") else "input", "width": 1,
                   "meaning": PIN_MEANINGS[p]} for p in PINS],
        "cycle_model": plan.cycle_model.describe(plan),
    }
    (out / f"{top}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def pcf_text(pins: dict[str, str], clock: str, mhz: float) -> str:
    """iCE40 physical constraints (``set_io``) for ``pins`` (port -> package pin)."""
    lines = ["# snnfpga board shell pins (generated)"]
    lines += [f"set_io {port} {pin}" for port, pin in pins.items()]
    lines.append(f"set_frequency {clock} {mhz:g}")
    return "\n".join(lines) + "\n"


def lpf_text(pins: dict[str, str], clock: str, mhz: float, io_type: str = "LVCMOS33") -> str:
    """ECP5 logical preferences (``LOCATE``/``IOBUF``/``FREQUENCY``) for ``pins``."""
    lines = ["# snnfpga board shell pins (generated)"]
    for port, site in pins.items():
        lines.append(f'LOCATE COMP "{port}" SITE "{site}";')
        lines.append(f'IOBUF PORT "{port}" IO_TYPE={io_type};')
    lines.append(f'FREQUENCY PORT "{clock}" {mhz:g} MHZ;')
    return "\n".join(lines) + "\n"
