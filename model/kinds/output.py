"""``output``: the accumulating output neurons (no spikes), and the class decision.

Inputs: one or more flat currents ``(n,)`` of one unit. Per class ``j`` a score register
(``score_bits``, signed, proven) starts at 0 and each step adds the sum of its input
currents (biases included). After ``T`` steps ``class = argmax_j score[j]``, the lowest
index winning ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model import widths as W
from snnfpga.model.kinds.base import Bound, Node, Proof, TensorType, register


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Output(Node):
    KIND: ClassVar[str] = "output"
    REGISTERS: ClassVar[dict] = {"score_bits": "score"}
    MAX_INPUTS: ClassVar[int | None] = None

    score_bits: int = 0

    def infer(self, ins):
        self.check_inputs(ins, ("current",), maps=False)
        shape = self.require_same_shape(ins)
        unit = self.require_one_unit(ins)
        return TensorType(shape, "score", unit=unit)

    def prove(self, ins, bounds, timesteps):
        step = bounds[0]
        for b in bounds[1:]:
            step = step + b
        lo, hi = W.score_bounds(step.lo, step.hi, timesteps)
        return Proof(out=Bound.of(lo, hi), registers={"input": step.span(), "score": (int(lo.min()), int(hi.max()))})

    def forward(self, xs, ins, proof=None):
        step = xs[0] if len(xs) == 1 else sum(x.astype(np.int64) for x in xs)
        return np.cumsum(step, axis=1, dtype=np.int64)  # [N, T, n]: the scores after each step

    def memory_bits(self, out):
        return {"weights": 0, "params": 0, "state": out.size * self.score_bits}
