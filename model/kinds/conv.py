"""``conv``: a K x K convolution on event maps, weights shared over positions.

``I[o, oy, ox] = sum_{c, ky, kx} W[o, c, ky, kx] x[c, s*oy + ky - p, s*ox + kx - p]``, where
positions outside the input count as no event (zero padding ``p``), stride ``s``; output
``I + B[o]`` of shape ``(C_out, H_out, W_out)`` with ``H_out = (H + 2p - K) // s + 1``.
Weights ``[C_out, C_in, K, K]``, bias ``[C_out]``; ``1 <= K <= 7``, ``1 <= s <= 4``,
``0 <= p < K``.

Scatter form (what an event does): an input event at ``(c, y, x)`` adds the weight row
``W[:, c, ky, kx]`` (``C_out`` weights) at output ``(oy, ox)`` for every tap with
``y + p - ky = s*oy``, ``0 <= oy < H_out`` (and likewise along x): up to ``K*K`` rows, fewer
at the borders and between strides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import NodeError, Synapse, check_array, check_int_param, register

MAX_KERNEL = 7
MAX_STRIDE = 4


def output_size(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


def taps_per_position(n: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each input position ``0..n-1`` along one axis: how many taps ``k`` reach a valid
    output (``(i + p - k) % s == 0`` and ``0 <= (i + p - k) // s < n_out``)."""
    n_out = output_size(n, kernel, stride, padding)
    i = np.arange(n)[:, None]
    k = np.arange(kernel)[None, :]
    d = i + padding - k
    valid = (d >= 0) & (d % stride == 0) & (d // stride < n_out)
    return valid.sum(axis=1)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Conv(Synapse):
    KIND: ClassVar[str] = "conv"

    stride: int
    padding: int

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    def output_shape(self, ins):
        c_in, h, w = ins[0].shape
        if self.weight.ndim != 4 or self.weight.shape[1] != c_in or self.weight.shape[2] != self.weight.shape[3] \
                or self.weight.shape[0] < 1:
            raise NodeError(f"weight must be [C_out, {c_in}, K, K] for the input {ins[0].describe()}, "
                            f"got {list(self.weight.shape)}")
        k = self.kernel
        if not 1 <= k <= MAX_KERNEL:
            raise NodeError(f"kernel {k}x{k} is outside the contract's 1..{MAX_KERNEL}")
        check_int_param("stride", self.stride, 1, MAX_STRIDE)
        check_int_param("padding", self.padding, 0, k - 1)
        h_out, w_out = (output_size(n, k, self.stride, self.padding) for n in (h, w))
        if h_out < 1 or w_out < 1:
            raise NodeError(f"kernel {k} stride {self.stride} padding {self.padding} leaves no output on a {h}x{w} map")
        c_out = int(self.weight.shape[0])
        check_array("bias", self.bias, (c_out,))
        return (c_out, h_out, w_out)

    def row_bounds(self, ins):
        w = self.weight.astype(np.int64).reshape(len(self.weight), -1) * ins[0].max_count
        return np.minimum(w, 0).sum(axis=1)[:, None, None], np.maximum(w, 0).sum(axis=1)[:, None, None]

    def bias_shape_for_output(self):
        return self.bias.astype(np.int64)[:, None, None]

    def currents(self, xs, ins):
        """im2col with the items innermost (``[C, H, W, B]``), so that each tap's columns
        are one copy of whole ``B``-long rows, and one product for the whole batch."""
        x = xs[0]
        b, c, h, w = x.shape
        k, s, p = self.kernel, self.stride, self.padding
        h_out, w_out = output_size(h, k, s, p), output_size(w, k, s, p)
        hp, wp = s * (h_out - 1) + k, s * (w_out - 1) + k  # the padded rows and columns read
        padded = np.zeros((c, hp, wp, b), dtype=np.float32)
        inner = x.transpose(1, 2, 3, 0)[:, :hp - p, :wp - p]
        padded[:, p:p + inner.shape[1], p:p + inner.shape[2]] = inner
        cols = np.empty((c, k, k, h_out, w_out, b), dtype=np.float32)
        for ky in range(k):
            for kx in range(k):
                cols[:, ky, kx] = padded[:, ky:ky + s * (h_out - 1) + 1:s, kx:kx + s * (w_out - 1) + 1:s]
        out = self.weight_float.reshape(len(self.weight), -1) @ cols.reshape(c * k * k, -1)
        return np.ascontiguousarray(out.reshape(-1, h_out, w_out, b).transpose(3, 0, 1, 2))

    def ops_map(self, t, index):
        _, h, w = t.shape
        k, s, p = self.kernel, self.stride, self.padding
        taps = taps_per_position(h, k, s, p)[:, None] * taps_per_position(w, k, s, p)[None, :]
        return (taps * self.weight.shape[0])[None]
