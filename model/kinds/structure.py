"""Nodes without weights or neurons: ``add``, ``concat``, ``pool``, ``flatten``.

* ``add``: the element-wise sum of two or more currents of one shape and unit (a current
  that several neuron tensors read, such as a stage's patch-encoding current); held in
  ``current_bits`` (proven).
* ``concat``: two or more maps ``(C_k, H, W)`` of one signal (and one unit, for currents)
  joined by channel in input order.
* ``pool``: global spike-count pooling: an event map ``(C, H, W)`` to counts ``(C,)``,
  ``count[c] = sum_{y, x} x[c, y, x]`` per step (at most ``H * W`` times the input's count).
* ``flatten``: an event tensor as a flat vector in ``(c, y, x)`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import (EVENT_SIGNALS, SIGNALS, Bound, Node, NodeError, Proof, TensorType,
                                      event_bound, register, sum_currents)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Add(Node):
    KIND: ClassVar[str] = "add"
    REGISTERS: ClassVar[dict] = {"current_bits": "current"}
    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = None

    current_bits: int = 0

    def infer(self, ins):
        self.check_inputs(ins, ("current",))
        shape = self.require_same_shape(ins)
        return TensorType(shape, "current", unit=self.require_one_unit(ins))

    def prove(self, ins, bounds, timesteps):
        total = bounds[0]
        for b in bounds[1:]:
            total = total + b
        return Proof(out=total, registers={"current": total.span()})

    def forward(self, xs, ins, proof=None):
        # In the narrowest dtype that holds the proven sum (int32 without a proof).
        return sum_currents(xs, proof.registers["current"] if proof else (-(1 << 31), (1 << 31) - 1))

    def memory_bits(self, out):
        return {"weights": 0, "params": 0, "state": out.size * self.current_bits}


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Concat(Node):
    KIND: ClassVar[str] = "concat"
    MIN_INPUTS: ClassVar[int] = 2
    MAX_INPUTS: ClassVar[int | None] = None

    def infer(self, ins):
        self.check_inputs(ins, SIGNALS, maps=True)
        signals = {t.signal for t in ins}
        if len(signals) > 1:
            raise NodeError(f"inputs mix signals ({', '.join(sorted(signals))}); concat joins one kind")
        planes = {t.shape[1:] for t in ins}
        if len(planes) > 1:
            listed = ", ".join(f"{n!r} {list(t.shape)}" for n, t in zip(self.inputs, ins))
            raise NodeError(f"inputs must share H and W to be joined by channel: {listed}")
        unit = self.require_one_unit(ins) if ins[0].signal == "current" else None
        shape = (sum(t.shape[0] for t in ins), *ins[0].shape[1:])
        return TensorType(shape, ins[0].signal, unit=unit, max_count=max(t.max_count for t in ins))

    def prove(self, ins, bounds, timesteps):
        full = [b.full(t.shape) for b, t in zip(bounds, ins)]
        out = Bound(np.concatenate([b.lo for b in full]), np.concatenate([b.hi for b in full]))
        return Proof(out=out, registers={})

    def forward(self, xs, ins, proof=None):
        return np.concatenate(xs, axis=2)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Pool(Node):
    KIND: ClassVar[str] = "pool"

    def infer(self, ins):
        self.check_inputs(ins, EVENT_SIGNALS, maps=True)
        c, h, w = ins[0].shape
        return TensorType((c,), "counts", max_count=h * w * ins[0].max_count)

    def prove(self, ins, bounds, timesteps):
        t = self.infer(ins)
        return Proof(out=event_bound(t), registers={})

    def forward(self, xs, ins, proof=None):
        return xs[0].sum(axis=(-2, -1), dtype=np.int32)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Flatten(Node):
    KIND: ClassVar[str] = "flatten"

    def infer(self, ins):
        self.check_inputs(ins, EVENT_SIGNALS)
        return TensorType((ins[0].size,), ins[0].signal, max_count=ins[0].max_count)

    def prove(self, ins, bounds, timesteps):
        return Proof(out=event_bound(self.infer(ins)), registers={})

    def forward(self, xs, ins, proof=None):
        x = xs[0]
        return x.reshape(*x.shape[:2], -1)
