"""Result-stream consumer with random back-pressure, and the reader of the spike-event log.

Spikes are observed on the monitor ports by the simulation-only shell
(:mod:`snnfpga.sim.cocotb_tb.wrapper`), which writes one line per event; :class:`EventLog`
turns that log into spike counts per image, step, stage and neuron, with the image and
step boundaries given by the end-of-step strobes (every stage sees exactly ``T`` per image).
"""

from __future__ import annotations

import random

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


class EventLog:
    """Incremental reader of the shell's event log (format in :mod:`.wrapper`).

    ``sizes``: neurons per monitored stage. After :meth:`drain`, ``spikes[s][image, step,
    neuron]`` counts the spikes stage ``s`` emitted, ``beat_cycles`` lists the cycle of
    every input transfer, ``valid_cycles`` the first cycle of every result, ``errors``
    any protocol violations (first few).
    """

    def __init__(self, path, sizes: list[int], timesteps: int, n_images: int, first_image: int = 0):
        self.path = path
        self.first_image = first_image
        self.T = timesteps
        self.sizes = sizes
        self.n_images = n_images
        self.spikes = [np.zeros((n_images, timesteps, n), dtype=np.int16) for n in sizes]
        self.errors: list[str] = []
        self._file = None
        self._partial = ""
        self._reset()

    def _reset(self):
        self.position = [[0, 0] for _ in self.sizes]  # [image, step] per stage
        for s in self.spikes:
            s[:] = 0
        self.beat_cycles: list[int] = []
        self.valid_cycles: list[int] = []
        self.done_cycles: list[int] = []

    def _error(self, text: str):
        if len(self.errors) < 20:
            self.errors.append(text)

    def drain(self) -> None:
        """Parse every complete line written so far."""
        if self._file is None:
            self._file = open(self.path)
        text = self._partial + self._file.read()
        lines = text.split("\n")
        self._partial = lines.pop()
        T = self.T
        for line in lines:
            f = line.split()
            kind = f[0]
            if kind == "S":
                stage, step, addr = int(f[1]), int(f[2]), int(f[3])
                image, expected_step = self.position[stage]
                if image >= self.n_images or step != expected_step or addr >= self.sizes[stage]:
                    self._error(f"stage {stage}: spike of neuron {addr} tagged step {step} at cycle {f[4]}, "
                                f"but image {self.first_image + image} step {expected_step} is running")
                    continue
                self.spikes[stage][image, step, addr] += 1
            elif kind == "E":
                stage, step = int(f[1]), int(f[2])
                pos = self.position[stage]
                if step != pos[1]:
                    self._error(f"stage {stage}: end of step {step} at cycle {f[3]}, expected image "
                                f"{self.first_image + pos[0]} step {pos[1]}")
                pos[1] += 1
                if pos[1] == T:
                    pos[0], pos[1] = pos[0] + 1, 0
            elif kind == "B":
                self.beat_cycles.append(int(f[1]))
            elif kind == "V":
                self.valid_cycles.append(int(f[1]))
            elif kind == "D":
                self.done_cycles.append(int(f[1]))
            elif kind == "R":
                self._reset()

    def close(self):
        if self._file is not None:
            self._file.close()
