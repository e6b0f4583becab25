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
                                      check_int_param, int_dtype, register)

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
        axis = 3 if self.axis == "h" else 4  # the scan axis of [N, T, C, H, W]
        # Inputs, u = (carry >> k) + I and the thresholds in the narrowest dtype that holds
        # them all (the proven ranges; int32 without a proof: every register fits 24 bits).
        if proof is None:
            dtype = np.int32
        else:
            (s_lo, s_hi), (i_lo, i_hi) = proof.registers["state"], proof.registers["input"]
            dtype = int_dtype(min(s_lo, i_lo), max(s_hi, i_hi, int(self.threshold.max())))
        # The scan axis first, so that each position along it is one contiguous block.
        current = np.ascontiguousarray(np.moveaxis(xs[0], axis, 0), dtype=dtype)  # [L, N, T, C, other]
        theta = np.ascontiguousarray(np.moveaxis(np.broadcast_to(self.threshold, ins[0].shape), axis - 2, 0),
                                     dtype=dtype)  # [L, C, other]
        starts = group_starts(len(current), self.group)
        fired = np.empty(current.shape, dtype=bool)
        u = np.empty(current.shape[1:], dtype=dtype)
        keep = np.empty(u.shape, dtype=bool)
        for j in range(len(current)):
            if starts[j]:  # carry = 0
                np.copyto(u, current[j])
            else:  # u held the carry
                np.right_shift(u, self.leak_shift, out=u)
                np.add(u, current[j], out=u)
            np.greater(u, theta[j], out=fired[j])
            if j + 1 < len(current) and not starts[j + 1]:  # carry = 0 if spike else u
                np.logical_not(fired[j], out=keep)
                np.multiply(u, keep, out=u)
        return np.ascontiguousarray(np.moveaxis(fired, 0, axis))

    def memory_bits(self, out):
        return {"weights": 0, "params": self.threshold.size * self.threshold_bits, "state": 0}
