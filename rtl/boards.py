"""Development boards: the FPGA target, oscillator, pins, host link and loader of each, in one place.

A board wraps the SPI board shell (:mod:`snnfpga.rtl.board`) in a top level of its own
(:mod:`snnfpga.rtl.bitstream`): the oscillator feeds a PLL (:mod:`snnfpga.rtl.pll`) whose
output clocks the shell, reset is held until the PLL locks, the shell's ``irq`` lights an
LED, and the four SPI pins go to the board's host link.

* ``icebreaker``: iCEBreaker v1.0 (iCE40 UP5K-SG48, 12 MHz oscillator on pin 35). The host
  link is the on-board FT2232H, channel A, in MPSSE SPI mode, on the configuration-flash
  wires (SCK 15, CS 16, host-out 14, host-in 17) that are free for user logic once the
  FPGA has configured. The flash shares those wires and its chip select, so the host first
  sends the flash its deep power-down command (``0xB9``, which the SPI bridge ignores:
  not one of its commands) and the flash stays silent until it sees ``0xAB``, which the
  bridge never uses. pyftdi names the flash's select ADBUS4 chip select 1. Reset: the user
  button (pin 10, active low); ``irq`` on the green LED (pin 37, active low).
* ``ulx3s``: Radiona ULX3S with an LFE5U-85F (25 MHz oscillator on G2). Its USB chip (port
  US1) is an FT231X, a UART without the MPSSE engine that SPI needs, so the host link is
  that UART at 2 Mbaud through the UART bridge (:mod:`snnfpga.rtl.uart_bridge`): FPGA
  receive on M1 (the board's ``ftdi_txd``), transmit on L4 (``ftdi_rxd``). Reset: FIRE1
  (R1, active high); ``irq`` on LED D0 (B2, active high).

``clock_mhz`` is the accelerator clock a bitstream asks for by default: the PLL output is
the nearest frequency at or below it, and the build fails when place and route does not
meet it on any placement seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snnfpga.errors import ConfigError

# The host link's pins on the board top, by link kind.
LINK_PORTS = {"spi": ("spi_sck", "spi_cs_n", "spi_mosi", "spi_miso"), "uart": ("uart_rx", "uart_tx")}


@dataclass(frozen=True)
class Board:
    """One board. ``pins``: board-top port (:attr:`ports`) -> package pin or ball. ``link``:
    ``spi`` (the SPI bridge) or ``uart`` (the UART bridge); ``ftdi_url``: the pyftdi URL of
    the host link; for SPI ``ftdi_cs`` (chip-select index) and ``spi_hz`` (default SPI clock,
    at most the accelerator clock / 4, the bridge's limit), for a UART ``baud``;
    ``loader``: openFPGALoader's arguments before the file (SRAM load; ``flash_args``
    writes the configuration flash instead); ``prelude``: SPI transactions the host sends
    once before the first register access."""

    name: str
    target: str
    title: str
    oscillator_mhz: float
    clock_mhz: float
    pins: dict[str, str]
    reset_active_low: bool
    led_active_low: bool
    host_link: str
    ftdi_url: str
    loader: tuple[str, ...]
    link: str = "spi"
    ftdi_cs: int | None = None
    spi_hz: int | None = None
    baud: int | None = None
    flash_args: tuple[str, ...] = ("-f",)
    prelude: tuple[bytes, ...] = field(default_factory=tuple)

    @property
    def ports(self) -> tuple[str, ...]:
        """The board top's ports (names in the constraints file), in order."""
        return ("osc", "reset", *LINK_PORTS[self.link], "led")

    @property
    def constraints_file(self) -> str:
        return "board.pcf" if self.target.startswith("ice40") else "board.lpf"


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", target="ice40-up5k", title="iCEBreaker v1.0 (iCE40 UP5K-SG48)",
        oscillator_mhz=12.0, clock_mhz=36.0,
        pins={"osc": "35", "reset": "10", "spi_sck": "15", "spi_cs_n": "16", "spi_mosi": "14", "spi_miso": "17",
              "led": "37"},
        reset_active_low=True, led_active_low=True,
        host_link="on-board FT2232H channel A (MPSSE SPI) on the configuration-flash wires; "
                  "the flash is put in deep power-down first",
        ftdi_url="ftdi://ftdi:2232h/1", ftdi_cs=1, spi_hz=6_000_000,
        loader=("-b", "ice40_generic"), flash_args=(),  # the iCE40 loads from its flash: always written
        prelude=(bytes([0xB9]),)),
    "ulx3s": Board(
        name="ulx3s", target="ecp5-85k", title="Radiona ULX3S 85F (LFE5U-85F-6BG381C)",
        oscillator_mhz=25.0, clock_mhz=100.0,
        pins={"osc": "G2", "reset": "R1", "uart_rx": "M1", "uart_tx": "L4", "led": "B2"},
        reset_active_low=False, led_active_low=False,
        host_link="on-board FT231X (USB port US1) as a UART, 8N1 at 2 Mbaud: it has no MPSSE engine for SPI",
        ftdi_url="ftdi://ftdi:231x/1", link="uart", baud=2_000_000,
        loader=("-b", "ulx3s")),
}


def get_board(name: str) -> Board:
    """The named board; :class:`ConfigError` naming the choices if there is none."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ConfigError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}, "
                          f"or give a constraints file (.pcf or .lpf) with --target") from None
