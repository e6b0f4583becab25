"""``glif``: SNN-MLP's group LIF along one spatial axis, made binary (no time state).

Input: one current map ``(C, H, W)``. Along ``axis`` (``h`` or ``w``) each line of length
``L`` is cut into ``L // s`` groups of ``group = s`` consecutive positions; the ``L % s``
trailing positions each form a group of one. Within a group, in position order::

    carry = 0                       # at the start of every group, every step
    u = (carry >> k) + I[pos]       # arithmetic shift (floor); k = leak_shift
    spike[pos] = u > theta          # strict
    carry = 0 if spike else u

``u`` is held in ``state_bits`` (proven, never saturates). Nothing carries from one step to
the next. ``threshold`` (``>= 0``) broadcasts to the map like a ``lif``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import (Bound, Node, NodeError, Proof, TensorType, check_broadcast, check_choice,
                                      check_int_param, register)

AXES = ("h", "w")
MAX_LEAK_SHIFT = 16


def group_starts(length: int, group: int) -> np.ndarray:
    """``bool [length]``: positions where a group starts (carry reset)."""
    full = (length // group) * group
    pos = np.arange(length)
    return (pos % group == 0) | (pos >= full)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Glif(Node):
    KIND: ClassVar[str] = "glif"
    ARRAYS: ClassVar[dict] = {"threshold": "threshold_bits"}
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ("threshold_bits",)
    REGISTERS: ClassVar[dict] = {"state_bits": "state"}
    SPIKING: ClassVar[bool] = True

    threshold: np.ndarray
    axis: str
    group: int
    leak_shift: int
    threshold_bits: int = 0
    state_bits: int = 0

    def infer(self, ins):
        self.check_inputs(ins, ("current",), maps=True)
        shape = ins[0].shape
        check_choice("axis", self.axis, AXES)
        check_int_param("group", self.group, 1, self._length(shape))
        check_int_param("leak_shift", self.leak_shift, 1, MAX_LEAK_SHIFT)
        check_broadcast("threshold", self.threshold, shape)
        if self.threshold.size and self.threshold.min() < 0:
            raise NodeError(f"thresholds must be >= 0, found {int(self.threshold.min())}")
        return TensorType(shape, "spikes")

    def _length(self, shape) -> int:
        return shape[1] if self.axis == "h" else shape[2]

    def _lines(self, arr: np.ndarray) -> np.ndarray:
        """Move the scan axis of a ``[..., C, H, W]`` array last."""
        return np.moveaxis(arr, -2, -1) if self.axis == "h" else arr

    def prove(self, ins, bounds, timesteps):
        shape = ins[0].shape
        i = bounds[0].full(shape)
        i_lo, i_hi = self._lines(i.lo), self._lines(i.hi)
        theta = self._lines(np.broadcast_to(self.threshold.astype(np.int64), shape))
        starts = group_starts(self._length(shape), self.group)
        k = self.leak_shift
        big = np.iinfo(np.int64).max
        c_lo = c_hi = np.zeros(i_lo.shape[:-1], dtype=np.int64)
        u_min, u_max = 0, 0
        for j in range(i_lo.shape[-1]):
            if starts[j]:
                c_lo = c_hi = np.zeros_like(c_lo)
            u_lo = (c_lo >> k) + i_lo[..., j]
            u_hi = (c_hi >> k) + i_hi[..., j]
            u_min, u_max = min(u_min, int(u_lo.min())), max(u_max, int(u_hi.max()))
            th = theta[..., j]
            quiet = u_lo <= th          # a value that does not fire is reachable: carry = u
            fires = u_hi > th           # a spike is reachable: carry = 0
            c_lo = np.minimum(np.where(quiet, u_lo, big), np.where(fires, 0, big))
            c_hi = np.maximum(np.where(quiet, np.minimum(u_hi, th), -big), np.where(fires, 0, -big))
        return Proof(out=Bound.of(0, 1), registers={"input": i.span(), "state": (u_min, u_max)})

    def forward(self, xs, ins, proof=None):
        current = self._lines(xs[0])  # [N, T, C, other, L]
        theta = self._lines(np.broadcast_to(self.threshold.astype(np.int32), ins[0].shape))
        starts = group_starts(current.shape[-1], self.group)
        out = np.zeros(current.shape, dtype=bool)
        carry = np.zeros(current.shape[:-1], dtype=np.int32)
        for j in range(current.shape[-1]):
            if starts[j]:
                carry = np.zeros_like(carry)
            u = (carry >> self.leak_shift) + current[..., j]
            fired = u > theta[..., j]
            carry = np.where(fired, 0, u)
            out[..., j] = fired
        return self._lines(out)

    def memory_bits(self, out):
        return {"weights": 0, "params": self.threshold.size * self.threshold_bits, "state": 0}
