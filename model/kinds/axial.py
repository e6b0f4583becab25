"""``axial``: the seed's token mixing, one matrix along H or along W shared by the rest.

``axis = "h"``: ``I[c, h', w] = sum_h W[h', h] x[c, h, w]`` (an ``H x H`` matrix shared over
channels and columns); ``axis = "w"``: ``I[c, h, w'] = sum_w W[w', w] x[c, h, w]``. Output
``I + B[p']`` with one bias per output position ``p'`` along the axis, shape as the input.
One event adds ``L`` weights (a column of ``W``: all positions of its line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import NodeError, Synapse, check_array, check_choice, register

AXES = ("h", "w")


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Axial(Synapse):
    KIND: ClassVar[str] = "axial"

    axis: str

    def _length(self, t) -> int:
        return t.shape[1] if self.axis == "h" else t.shape[2]

    def _along(self, arr: np.ndarray) -> np.ndarray:
        """A per-position vector ``[L]`` shaped to broadcast over ``(C, H, W)``."""
        return arr[None, :, None] if self.axis == "h" else arr[None, None, :]

    def output_shape(self, ins):
        check_choice("axis", self.axis, AXES)
        length = self._length(ins[0])
        if self.weight.shape != (length, length):
            raise NodeError(f"weight must be [{length}, {length}] along axis {self.axis} of {ins[0].describe()}, "
                            f"got {list(self.weight.shape)}")
        check_array("bias", self.bias, (length,))
        return ins[0].shape

    def row_bounds(self, ins):
        w = self.weight.astype(np.int64) * ins[0].max_count
        return self._along(np.minimum(w, 0).sum(axis=1)), self._along(np.maximum(w, 0).sum(axis=1))

    def bias_shape_for_output(self):
        return self._along(self.bias.astype(np.int64))

    def currents(self, xs, ins):
        x, w = xs[0], self.weight_float
        if self.axis == "h":
            return np.matmul(w, x)
        return (x.reshape(-1, x.shape[-1]) @ w.T).reshape(x.shape)  # one product, not one per row

    def ops_map(self, t, index):
        return np.int64(self._length(t))
