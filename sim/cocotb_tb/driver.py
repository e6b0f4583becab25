"""Driver of a valid/ready input stream with random idle gaps.

Every transfer decision is taken at a falling clock edge, where the design's outputs are
settled for the next rising edge on every simulator; Python wakes once per beat (or per
gap, or per rise of ``ready``), never once per idle cycle.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge


def gap_length(rng: random.Random, p: float) -> int:
    """Idle cycles before a beat: geometric with continuation probability ``p`` (0 = never)."""
    n = 0
    while p and rng.random() < p:
        n += 1
    return n


class StreamDriver:
    """Pushes words onto ``payload``/``valid``, waiting for ``ready``; ``gaps`` is the
    probability of one more idle cycle before a beat (``0`` sends back to back)."""

    def __init__(self, clk, payload, valid, ready, *, gaps: float = 0.0, rng: random.Random | None = None):
        self.clk, self.payload, self.valid, self.ready = clk, payload, valid, ready
        self.gaps = gaps
        self.rng = rng or random.Random(0)
        self.sent = 0
        valid.value = 0

    async def send(self, words: Iterable[int]) -> None:
        """Send ``words`` in order; returns at the falling edge after the last transfer."""
        await FallingEdge(self.clk)
        for word in words:
            idle = gap_length(self.rng, self.gaps)
            if idle:
                self.valid.value = 0
                await ClockCycles(self.clk, idle, rising=False)
            self.payload.value = word
            self.valid.value = 1
            while not self.ready.value:
                await RisingEdge(self.ready)
                await FallingEdge(self.clk)
            await FallingEdge(self.clk)  # the transfer happened at the rising edge in between
            self.sent += 1
        self.valid.value = 0


def weight_load_beats(plan) -> list[int]:
    """Words of the ``weights`` load stream that fill every weight RAM (weight storage
    ``ram``): ``{layer, addr, data}`` packed as :func:`snnfpga.rtl.tokens.weight_port_signature`."""
    from snnfpga.rtl.tokens import weight_port_signature

    layout = weight_port_signature(plan).members["payload"].shape
    addr, data, layer = (layout[name].offset for name in ("addr", "data", "layer"))
    return [(a << addr) | (word << data) | (index << layer) for index, a, word in plan.weight_loads()]
