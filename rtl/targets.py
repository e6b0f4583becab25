"""FPGA targets: device, package, speed grade, capacity, pins and hardware defaults, in one place.

Two reference FPGAs (docs/implementation.md):

* ``ice40-up5k``: Lattice iCE40 UP5K in the 48-pin QFN (iCE40UP5K-SG48): 5,280 logic cells,
  30 EBR (4 kbit), 4 SPRAM (256 kbit), 8 DSP, 39 IO. Defaults: 8 lanes (8 x 4-bit weights:
  a 32-bit word in two 16-bit SPRAMs side by side; 16 lanes would not fit the logic cells),
  weights in RAM (loaded over SPI after reset; Yosys
  maps them to SPRAM, which the bitstream cannot initialise), 1 pixel per beat; a layer
  graph: 4 lanes per engine, not folded (its logic cells bind before its block RAM:
  ``ttfs-tiny`` needs 5,468 logic cells at 8 lanes, 4,357 at 4).
  Pins: iCEBreaker PMOD1A as a PMOD type 2A (expanded SPI) port, clock on the 12 MHz
  oscillator's global-buffer pin 35.
* ``ecp5-85k``: Lattice ECP5 LFE5U-85F, speed grade 6, 381-ball caBGA (LFE5U-85F-6BG381C):
  83,640 LUT4, 208 DP16KD (18 kbit), 156 MULT18X18D. Defaults: 64 lanes, weights in ROM
  (DP16KD contents in the bitstream; a weight memory deeper than 2,048 words is split into
  banks of 2,048, one DP16KD column in 2K x 9 each, see rtl/plan.py), 4 pixels per beat; a
  layer graph: each engine's lanes folded to the block RAM (rtl/graph_fold.py). Pins: ULX3S board (25 MHz clock on
  G2, FIRE1 button as reset, SPI on GPIO header J1).

``clock_mhz`` is the constraint given to nextpnr (timing-driven placement aims at it; the
report gives the achieved Fmax either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snnfpga.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """One FPGA target. ``capacity``: available cells by resource name (see ``resources``);
    ``memory_primitives``: bits of one block of each on-chip memory resource in ``capacity``."""

    name: str
    family: str  # yosys synth_<family>, nextpnr-<family>
    device: str  # full part number
    nextpnr_args: tuple[str, ...]
    package: str
    speed: str
    capacity: dict[str, int]
    lanes: int
    weight_storage: str
    pixels_per_beat: int
    clock_mhz: float
    pins: dict[str, str] = field(default_factory=dict)
    board: str = ""
    rom_bank_depth: int | None = None  # weight ROM banks (see rtl/plan.py), None: one memory
    pnr_seeds: int = 3  # placement seeds tried by nextpnr, the best kept (rtl/implement.py)
    memory_primitives: dict[str, int] = field(default_factory=dict)
    graph_lanes: int | None = None  # a layer graph's lanes per engine; None: folded to the block RAM

    @property
    def memory_bits(self) -> int:
        """All on-chip block memory in bits (ideal packing: an upper bound of what a design can use)."""
        return sum(self.capacity[name] * bits for name, bits in self.memory_primitives.items())

    @property
    def constraints_file(self) -> str:
        return "pins.pcf" if self.family == "ice40" else "pins.lpf"


TARGETS: dict[str, Target] = {
    "ice40-up5k": Target(
        name="ice40-up5k", family="ice40", device="iCE40UP5K-SG48",
        nextpnr_args=("--up5k", "--package", "sg48"), package="SG48 (48-pin QFN)", speed="n/a (single grade)",
        capacity={"logic_cells": 5280, "ebr": 30, "spram": 4, "dsps": 8, "io": 39},
        lanes=8, weight_storage="ram", pixels_per_beat=1, clock_mhz=40.0,
        pins={"clk": "35", "rst": "48", "spi_cs_n": "4", "spi_mosi": "2", "spi_miso": "47", "spi_sck": "45",
              "irq": "3"},
        board="iCEBreaker: PMOD1A as PMOD type 2A (1 CS, 2 MOSI, 3 MISO, 4 SCK, 7 INT, 8 RESET), clock pin 35",
        memory_primitives={"ebr": 4 * 1024, "spram": 256 * 1024}, graph_lanes=4),
    "ecp5-85k": Target(
        name="ecp5-85k", family="ecp5", device="LFE5U-85F-6BG381C",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"), package="CABGA381 (381-ball caBGA)",
        speed="6",
        capacity={"luts": 83640, "ffs": 83640, "dp16kd": 208, "dsps": 156, "io": 205},
        lanes=64, weight_storage="rom", pixels_per_beat=4, clock_mhz=100.0,
        pins={"clk": "G2", "rst": "R1", "spi_cs_n": "B11", "spi_mosi": "A10", "spi_miso": "A9", "spi_sck": "B9",
              "irq": "B10"},
        board="ULX3S: 25 MHz oscillator G2 (a PLL would raise it), FIRE1 button R1 as reset, GPIO J1 gp0..gp3, gn2",
        rom_bank_depth=2048, memory_primitives={"dp16kd": 18 * 1024}),
}


def get_target(name: str) -> Target:
    """The named target; :class:`ConfigError` naming the choices if there is none."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None
