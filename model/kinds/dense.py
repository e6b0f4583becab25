"""``dense``: every input event adds one weight to every output (version 1's layer).

``I[j] = sum_i W[j, i] x[i]`` over the input tensor flattened in ``(c, y, x)`` order
(``i = (c * H + y) * W + x``; a flat input as it is); output ``I + B`` of shape
``(n_out,)``. Weights ``[n_out, n_in]``, bias ``[n_out]``. One input event adds one weight
row of ``n_out`` weights (``n_out`` synaptic operations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import NodeError, Synapse, check_array, register


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Dense(Synapse):
    KIND: ClassVar[str] = "dense"
    READS_MAPS: ClassVar[bool | None] = None  # any rank: read flattened

    def output_shape(self, ins):
        if self.weight.ndim != 2:
            raise NodeError(f"weight must be [n_out, n_in], got shape {list(self.weight.shape)}")
        n_out, n_in = self.weight.shape
        if n_out < 1:
            raise NodeError("no outputs")
        if n_in != ins[0].size:
            raise NodeError(f"weight must have shape [n_out, {ins[0].size}] for the input "
                            f"{ins[0].describe()}, got {list(self.weight.shape)}")
        check_array("bias", self.bias, (n_out,))
        return (int(n_out),)

    def row_bounds(self, ins):
        w = self.weight.astype(np.int64) * ins[0].max_count
        return np.minimum(w, 0).sum(axis=1), np.maximum(w, 0).sum(axis=1)

    def bias_shape_for_output(self):
        return self.bias.astype(np.int64)

    def currents(self, xs, ins):
        return xs[0].reshape(len(xs[0]), -1) @ self.weight_float.T

    def ops_map(self, t, index):
        return np.int64(self.weight.shape[0])
