"""The bench's stream schedules, drawn once before a run, as the shell replays them.

The accelerator bench drives three streams, each with its own random stream (derived from
the job's seed by :func:`streams`, the order the Python bench has always drawn them in):

* the pixel **driver**: before each beat, an idle gap of :func:`~.driver.gap_length` cycles
  (``gaps``); first the beats of an abandoned partial image (``abandon_beats``), then the
  beats of every image, the bytes after the last pixel random (:func:`snnfpga.rtl.encoder.pixel_beats`);
* the weight **loader** (weight storage ``ram``): the same for every weight word, first;
* the result **consumer**: ready at the start or not, then per result the idle cycles
  before it is taken and whether ``ready`` drops after it (``stall``).

With ``stimulus="python"`` the bench draws them while it runs (:class:`~.driver.StreamDriver`,
:class:`~.monitor.StreamConsumer`); with ``stimulus="shell"`` :func:`write` draws the same
numbers beforehand into two files the Verilog shell replays (:mod:`.wrapper`), so a beat,
gap or stall lands on the same clock edge either way.

The script is one ``op arg word`` line per step (``word`` in hex), executed at rising edges
by the shell, where Python acts at the falling edge before them:

    0 N 0   wait N clock edges (``N`` falling edges in Python)
    1 V 0   ``rst`` <- V            2 V 0   ``soft_reset`` <- V
    3 G W   pixel beat W after G idle cycles; the script waits for its transfer
    4 G W   weight beat W, the same   5 0 0 / 6 0 0   end of a send: pixel / weight valid low

The stall file: the initial ``ready`` (``1``/``0``), then ``wait drop`` per result.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from snnfpga.sim.cocotb_tb.driver import gap_length
from snnfpga.sim.cocotb_tb.wrapper import (OP_END_PIXELS, OP_END_WEIGHTS, OP_PIXELS, OP_RST, OP_SOFT_RESET,
                                           OP_WAIT, OP_WEIGHTS)

RESET_CYCLES = 3  # clock cycles in reset at the start
ABANDON_WAIT = 3  # cycles between the last abandoned beat and the soft reset


def streams(seed: int) -> tuple[random.Random, random.Random, random.Random]:
    """The random streams of the pixel driver, the result consumer and the weight loader."""
    rng = random.Random(seed)
    return random.Random(rng.random()), random.Random(rng.random()), random.Random(rng.random())


def _beats(op: int, words, rng: random.Random, p: float) -> list[str]:
    if p:
        return [f"{op} {gap_length(rng, p)} {w:x}" for w in words]
    return [f"{op} 0 {w:x}" for w in words]


def script(pixels: np.ndarray, per_beat: int, *, seed: int, gaps: float, abandon_beats: int = 0,
           weight_words: list[int] | None = None) -> tuple[list[str], int]:
    """The input side's script (lines) and how many beats precede the first image's
    (weight words, abandoned beats)."""
    from snnfpga.rtl.encoder import pixel_beats

    driver, _, loader = streams(seed)
    # The script starts at the first rising edge: Python waits RESET_CYCLES falling edges,
    # the first one after that edge.
    lines = [f"{OP_WAIT} {RESET_CYCLES - 1} 0", f"{OP_RST} 0 0"]
    if weight_words:
        lines.append(f"{OP_WAIT} 1 0")  # a send starts at the next edge
        lines += _beats(OP_WEIGHTS, weight_words, loader, gaps)
        lines.append(f"{OP_END_WEIGHTS} 0 0")
    if abandon_beats:
        partial = pixel_beats(pixels[0], per_beat, np.random.default_rng(seed))[:abandon_beats]
        lines.append(f"{OP_WAIT} 1 0")
        lines += _beats(OP_PIXELS, partial, driver, gaps)
        lines += [f"{OP_END_PIXELS} 0 0", f"{OP_WAIT} {ABANDON_WAIT} 0", f"{OP_SOFT_RESET} 1 0", f"{OP_WAIT} 1 0",
                  f"{OP_SOFT_RESET} 0 0"]
    padding = np.random.default_rng(seed)  # random bytes after the last pixel: must be ignored
    lines.append(f"{OP_WAIT} 1 0")
    for image in pixels:
        lines += _beats(OP_PIXELS, pixel_beats(image, per_beat, padding), driver, gaps)
    lines.append(f"{OP_END_PIXELS} 0 0")
    return lines, len(weight_words or []) + abandon_beats


def stalls(n_results: int, *, seed: int, stall: float) -> list[str]:
    """The consumer's schedule: initial ready, then ``wait drop`` for each result."""
    _, rng, _ = streams(seed)
    lines = ["1" if rng.random() >= stall else "0"]
    for _ in range(n_results):
        wait = gap_length(rng, stall)
        lines.append(f"{wait} {int(rng.random() < stall)}")
    return lines


def write(script_path: Path, stalls_path: Path | None, pixels: np.ndarray, per_beat: int, *, seed: int,
          gaps: float, stall: float, abandon_beats: int = 0, weight_words: list[int] | None = None) -> int:
    """Write the schedules of a run of ``pixels`` (``int [N, n]``): the script, and the stall
    file unless ``stalls_path`` is None (:func:`write_stalls`); return the number of beats
    before the first image's."""
    lines, preamble = script(pixels, per_beat, seed=seed, gaps=gaps, abandon_beats=abandon_beats,
                             weight_words=weight_words)
    Path(script_path).write_text("\n".join(lines) + "\n")
    if stalls_path is not None:
        write_stalls(stalls_path, len(pixels), seed=seed, stall=stall)
    return preamble


def write_stalls(path: Path, n_results: int, *, seed: int, stall: float) -> None:
    Path(path).write_text("\n".join(stalls(n_results, seed=seed, stall=stall)) + "\n")
