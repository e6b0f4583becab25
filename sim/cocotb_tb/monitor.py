"""Result-stream consumer with random back-pressure, and the reader of the spike-event log.

Spikes are observed on the monitor ports by the simulation-only shell
(:mod:`snnfpga.sim.cocotb_tb.wrapper`), which writes one line per event; :class:`EventLog`
turns that log into spike counts per image, step, stage and neuron, with the image and
step boundaries given by the end-of-step strobes (every stage sees exactly ``T`` per image).
"""

from __future__ import annotations

import random
import warnings

import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from snnfpga.sim.cocotb_tb.driver import gap_length


class StreamConsumer:
    """Takes words from ``payload``/``valid``, holding ``ready`` low for random stretches;
    ``stall`` is the probability of one more cycle of back-pressure before a transfer."""

    def __init__(self, clk, payload, valid, ready, *, stall: float = 0.0, rng: random.Random | None = None):
        self.clk, self.payload, self.valid, self.ready = clk, payload, valid, ready
        self.stall = stall
        self.rng = rng or random.Random(1)
        ready.value = 1 if self.rng.random() >= stall else 0

    async def receive(self) -> int:
        """Wait for the next word and take it; returns at the falling edge after the transfer."""
        if not self.valid.value:
            await RisingEdge(self.valid)
            await FallingEdge(self.clk)
        word = self.payload.value.to_unsigned()  # stable while valid, read mid-cycle
        wait = gap_length(self.rng, self.stall)
        if wait:
            self.ready.value = 0
            await ClockCycles(self.clk, wait, rising=False)
        self.ready.value = 1
        await FallingEdge(self.clk)  # the transfer happened at the rising edge in between
        if self.rng.random() < self.stall:
            self.ready.value = 0  # not ready before the next word appears
        return word


# Event kinds of the log, as the reader numbers them (the shell writes the letters).
KINDS = "SEBR"
SPIKE, EOS, BEAT, RESET = range(4)
_DIGITS = str.maketrans({letter: str(k) for k, letter in enumerate(KINDS)})
MAX_ERRORS = 20


class _LineReader:
    """Reads a log the shell is still writing: :meth:`_complete_lines` returns every complete
    line (with its newline) written since the last call, "" when there is none."""

    def __init__(self, path):
        self.path = path
        self._file = None
        self._partial = ""

    def _complete_lines(self) -> str:
        if self._file is None:
            try:
                self._file = open(self.path)
            except FileNotFoundError:  # the shell has not opened it yet (nothing logged)
                return ""
        text = self._partial + self._file.read()
        cut = text.rfind("\n") + 1
        self._partial = text[cut:]
        return text[:cut]

    def close(self):
        if self._file is not None:
            self._file.close()


class EventLog(_LineReader):
    """Incremental reader of the shell's event log (format in :mod:`.wrapper`).

    ``sizes``: neurons per monitored stage. After :meth:`drain`, ``spikes[s][image, step,
    neuron]`` counts the spikes stage ``s`` emitted, ``beat_cycles`` lists the cycle of
    every input transfer, ``errors`` any protocol violations (first few, in log order): a
    spike tagged with another step than the running one, of a neuron out of range, or after
    the last image; an end of step out of order. Each drain parses everything written so
    far in one go (numpy), however many events that is.
    """

    def __init__(self, path, sizes: list[int], timesteps: int, n_images: int, first_image: int = 0):
        super().__init__(path)
        self.first_image = first_image
        self.T = timesteps
        self.sizes = sizes
        self.n_images = n_images
        # One buffer for all stages (one scatter per drain); spikes[s] is a view of it.
        cells = [n_images * timesteps * n for n in sizes]
        self._offsets = np.cumsum([0] + cells[:-1]).astype(np.int64)
        self._counts = np.zeros(sum(cells), dtype=np.int16)
        self.spikes = [self._counts[o:o + c].reshape(n_images, timesteps, n)
                       for o, c, n in zip(self._offsets, cells, sizes)]
        self._sizes = np.array(sizes, dtype=np.int64)
        self.errors: list[str] = []
        self._reset()

    def _reset(self):
        self._steps = np.zeros(len(self.sizes), dtype=np.int64)  # end-of-step tokens seen per stage
        self._counts[:] = 0
        self.beat_cycles: list[int] = []

    @property
    def position(self) -> list[list[int]]:
        """``[image, step]`` each stage is in (the next event's)."""
        return [[int(n) // self.T, int(n) % self.T] for n in self._steps]

    def drain(self) -> None:
        """Parse every complete line written so far."""
        complete = self._complete_lines()
        if not complete:
            return
        body = complete.translate(_DIGITS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy's word on a line it cannot read
            values = np.fromstring(body, dtype=np.int64, sep=" ")
        rows = values.reshape(-1, 5) if values.size == 5 * body.count("\n") else self._rows(complete)
        resets = np.flatnonzero(rows[:, 0] == RESET)
        start = 0
        for r in resets:  # a reset abandons everything before it (usually a few in a row)
            self._take(rows[start:r])
            self._reset()
            start = r + 1
        self._take(rows[start:])

    def _rows(self, text: str) -> np.ndarray:
        """Line by line, for a chunk with a line that is not five integers (unknown bits)."""
        rows = []
        for line in text.splitlines():
            f = line.split()
            try:
                fields = [KINDS.index(f[0])] + [int(v) for v in f[1:]]
            except (ValueError, IndexError):
                fields = []
            if len(fields) == 5:
                rows.append(fields)
            elif len(self.errors) < MAX_ERRORS:
                self.errors.append(f"unreadable event {line!r}")
        return np.array(rows, dtype=np.int64).reshape(-1, 5)

    def _take(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        kind = rows[:, 0]
        self.beat_cycles += rows[kind == BEAT, 4].tolist()
        events = np.flatnonzero(kind <= EOS)
        if not len(events):
            return
        sel = rows[events]
        stage, step, addr = sel[:, 1], sel[:, 2], sel[:, 3]
        n_stages = len(self.sizes)
        if stage.min() < 0 or stage.max() >= n_stages:  # a stage the log should not have
            keep = (stage >= 0) & (stage < n_stages)
            for i in np.flatnonzero(~keep)[:MAX_ERRORS - len(self.errors)]:
                self.errors.append(f"event of an unknown stage {stage[i]} at cycle {sel[i, 4]}")
            events, sel = events[keep], sel[keep]
            stage, step, addr = sel[:, 1], sel[:, 2], sel[:, 3]
        eos = sel[:, 0] == EOS
        # Steps each event's stage had ended before it: a running count per stage.
        ends = np.zeros((len(sel), n_stages), dtype=np.int64)
        ends[np.flatnonzero(eos), stage[eos]] = 1
        before = self._steps[stage] + np.cumsum(ends, axis=0)[np.arange(len(sel)), stage] - eos
        image, expected = np.divmod(before, self.T)
        size = self._sizes[stage]
        bad_eos = eos & (step != expected)
        bad = ~eos & ((image >= self.n_images) | (step != expected) | (addr < 0) | (addr >= size))
        ok = ~eos & ~bad
        self._steps += ends.sum(axis=0)
        flat = self._offsets[stage[ok]] + ((image[ok] * self.T + step[ok]) * size[ok] + addr[ok])
        np.add.at(self._counts, flat, np.int16(1))  # (an int16 increment keeps numpy on its fast path)
        for i in np.flatnonzero(bad | bad_eos)[:max(0, MAX_ERRORS - len(self.errors))]:
            if eos[i]:
                self.errors.append(f"stage {stage[i]}: end of step {step[i]} at cycle {sel[i, 4]}, expected image "
                                   f"{self.first_image + image[i]} step {expected[i]}")
            else:
                self.errors.append(f"stage {stage[i]}: spike of neuron {addr[i]} tagged step {step[i]} at cycle "
                                   f"{sel[i, 4]}, but image {self.first_image + image[i]} step {expected[i]} is running")


class ResultLog(_LineReader):
    """Incremental reader of the shell's result log (format in :mod:`.wrapper`): per result
    the first cycle it was valid and its payload then (``valid_cycles``,
    ``valid_payloads``), the cycle it was taken and the payload taken (``done_cycles``,
    ``done_payloads``), and the design's ``(images, cycles)`` counters one edge later
    (``counters``). A payload with unknown bits (Icarus ``x``) reads as None."""

    def __init__(self, path):
        super().__init__(path)
        self.valid_cycles: list[int] = []
        self.valid_payloads: list[int | None] = []
        self.done_cycles: list[int] = []
        self.done_payloads: list[int | None] = []
        self.counters: list[tuple[int, int]] = []

    def drain(self) -> None:
        for line in self._complete_lines().splitlines():
            f = line.split()
            if f[0] == "V":
                self.valid_cycles.append(int(f[1]))
                self.valid_payloads.append(_hex(f[2]))
            elif f[0] == "D":
                self.done_cycles.append(int(f[1]))
                self.done_payloads.append(_hex(f[2]))
            elif f[0] == "C":
                self.counters.append((_int(f[2]), _int(f[3])))


def _hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1
