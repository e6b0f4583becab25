"""``lif_output``: spiking output neurons decided by spike count, ties by membrane.

What snnTorch users do: the last layer is a population of LIF neurons, and the class is
the one that spiked most, the higher membrane potential winning a tie. Inputs and
dynamics are a ``lif``'s (:mod:`snnfpga.model.kinds.lif`: one or more flat currents of one
unit, the same leak, fire comparison and reset, the same membrane of ``membrane_bits``
``M``); on top, per class ``j`` a spike counter ``count[j]`` starts at 0 and adds the
class's spike of each step. The node's output is the score after each step,

    score[j] = count[j] * 2**M + (v[j] + 2**(M-1))

with ``v`` the membrane held after the step (after its reset). ``v + 2**(M-1)`` lies in
``0 .. 2**M - 1``, so the score orders classes by count, then by membrane: the
``output`` node's decision (argmax, lowest index on ties) is the rule above, and the
hardware reads the score as the concatenation ``{count, ~v[M-1], v[M-2:0]}`` (no adder).
``score_bits`` holds ``(T + 1) * 2**M - 1``, at most 32 bits (the scores are read
through 32-bit registers). The output's spikes are counted, not emitted: the node is not
a spiking stage (no spike counter of its own in the register map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model import widths as W
from snnfpga.model.kinds.base import NodeError, Proof, TensorType, register
from snnfpga.model.kinds.lif import Lif
from snnfpga.model.kinds.output import Output

MAX_SCORE_BITS = 32


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class LifOutput(Lif, Output):
    KIND: ClassVar[str] = "lif_output"
    SPIKING: ClassVar[bool] = False
    REGISTERS: ClassVar[dict] = {}  # score_bits follows membrane_bits (see widths)

    def infer(self, ins):
        super().infer(ins)  # the lif's checks
        self.check_inputs(ins, ("current",), maps=False)
        return TensorType(ins[0].shape, "score", unit=ins[0].unit)

    def prove(self, ins, bounds, timesteps):
        proof = super().prove(ins, bounds, timesteps)
        membrane = self.membrane_bits or W.signed_bits(*proof.registers["membrane"])
        registers = dict(proof.registers, count=(0, int(timesteps)),
                         score=(0, ((int(timesteps) + 1) << membrane) - 1))
        return Proof(out=proof.out, registers=registers)

    @staticmethod
    def score_bits_for(timesteps: int, membrane_bits: int) -> int:
        return W.signed_bits(0, ((timesteps + 1) << membrane_bits) - 1)

    def widths(self, proof, membrane_bits=None):
        out = super().widths(proof, membrane_bits)
        out["score_bits"] = self.score_bits_for(proof.registers["count"][1], out["membrane_bits"])
        return out

    def check_widths(self, proof):
        super().check_widths(proof)
        need = self.score_bits_for(proof.registers["count"][1], self.membrane_bits)
        if need > MAX_SCORE_BITS:
            raise NodeError(f"scores of {need} bits (spike count over {self.membrane_bits}-bit membrane) "
                            f"exceed the {MAX_SCORE_BITS}-bit result registers; fewer steps or a narrower membrane")
        if self.score_bits != need:
            raise NodeError(f"score_bits must be {need} (count 0..{proof.registers['count'][1]} over a "
                            f"{self.membrane_bits}-bit membrane), got {self.score_bits}")

    def forward(self, xs, ins, proof=None):
        spikes, held = self.simulate(xs, proof, membranes=True)
        m = self.membrane_bits
        counts = np.cumsum(spikes, axis=1, dtype=np.int64)
        return (counts << m) + held.astype(np.int64) + (1 << (m - 1))

    def memory_bits(self, out):
        bits = super().memory_bits(out)  # thresholds and membranes
        count_bits = self.score_bits - 1 - self.membrane_bits  # the score, less its sign, is {count, v}
        return dict(bits, state=bits["state"] + out.size * count_bits)
