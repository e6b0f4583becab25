"""``pointwise``: a 1 x 1 channel mixing shared over all positions.

Inputs: one or more event maps ``(C_k, H, W)`` with the same ``H, W``, joined by channel in
input order (``C_in = sum C_k``; the fuse of ``[x; x_h; x_w]`` is three inputs).
``I[o, y, x] = sum_c W[o, c] x[c, y, x]``; output ``I + B[o]``, shape ``(C_out, H, W)``.
Weights ``[C_out, C_in]``, bias ``[C_out]``. One event adds ``C_out`` weights (one row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import NodeError, Synapse, check_array, register


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Pointwise(Synapse):
    KIND: ClassVar[str] = "pointwise"
    MAX_INPUTS: ClassVar[int | None] = None

    def output_shape(self, ins):
        planes = {t.shape[1:] for t in ins}
        if len(planes) > 1:
            listed = ", ".join(f"{n!r} {list(t.shape)}" for n, t in zip(self.inputs, ins))
            raise NodeError(f"inputs must share H and W to be joined by channel: {listed}")
        c_in = sum(t.shape[0] for t in ins)
        if self.weight.ndim != 2 or self.weight.shape[1] != c_in or self.weight.shape[0] < 1:
            raise NodeError(f"weight must have shape [C_out, {c_in}] (channels of all inputs), got {list(self.weight.shape)}")
        c_out = int(self.weight.shape[0])
        check_array("bias", self.bias, (c_out,))
        return (c_out, *ins[0].shape[1:])

    def _column_scale(self, ins):
        return np.concatenate([np.full(t.shape[0], t.max_count, dtype=np.int64) for t in ins])

    def row_bounds(self, ins):
        w = self.weight.astype(np.int64) * self._column_scale(ins)[None, :]
        return (np.minimum(w, 0).sum(axis=1)[:, None, None], np.maximum(w, 0).sum(axis=1)[:, None, None])

    def bias_shape_for_output(self):
        return self.bias.astype(np.int64)[:, None, None]

    def packed_currents(self, xs, ins, packing):
        """The inputs packed straight into their channels of the join (no concatenation)."""
        if len(xs) == 1:
            return super().packed_currents(xs, ins, packing)
        b = -(-len(xs[0]) // packing.m)
        joined = np.empty((b, sum(x.shape[1] for x in xs), *xs[0].shape[2:]), dtype=np.float32)
        start = 0
        for x in xs:
            packing.pack(x, out=joined[:, start:start + x.shape[1]])
            start += x.shape[1]
        return self.currents([joined], ins)

    def currents(self, xs, ins):
        x = np.concatenate(xs, axis=1) if len(xs) > 1 else xs[0]
        b, c, h, w = x.shape
        # One [C_out, C_in] @ [C_in, H*W] product per item (image and step): no transposes.
        return np.matmul(self.weight_float, x.reshape(b, c, h * w)).reshape(b, -1, h, w)

    def ops_map(self, t, index):
        return np.int64(self.weight.shape[0])
