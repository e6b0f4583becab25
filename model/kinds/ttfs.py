"""``ttfs`` and ``ttfs_output``: time-to-first-spike layers (Stanojevic et al.; SEEDS.md 3, 4.5).

Time is cut into windows of ``S`` steps (``S = 2**b - 1``, ``b`` the encoder's bits). A TTFS
tensor fires at most once per element per image, inside its window ``n``; a spike at step
``k`` of the window stands for the activation ``x = S - k`` (no spike: ``x = 0``).

``ttfs`` (weights ``W[n_out, n_in]``, per neuron ``ramp`` ``R >= 1`` and ``threshold``
``theta``) reads a TTFS tensor of window ``n`` (flattened) and fires in window ``n + 1``.
Registers per neuron: the slope ``J`` and the membrane ``V``, both 0 at image start.

* integrate, window ``n``, steps ``k = 0 .. S-1``: ``J += W[:, j]`` for every input spike
  ``j`` of step ``k``; then ``V += J``. After the window ``V = sum_j W[i, j] x_j`` (the ramp
  forms the product, no multiplier);
* fire, window ``n + 1``, steps ``k = 0 .. S-1``: ``if k > 0: V += R``; the neuron fires at
  the first ``k`` with ``V >= theta`` and never again in this image.

So ``x_i = clamp(floor((W x + D) / R), 0, S)`` with ``D = S * R - theta``: the layer is a
quantised ReLU. ``ttfs_output`` (weights, ``bias`` ``D``) integrates the last window the
same way; its score is ``D + V``, read after the window; ``class = argmax``, lowest index
wins ties.

Widths (proven): every input fires at most once, so ``J`` lies in ``[sum of the negative,
sum of the positive weights]`` of its row, ``V`` in ``S`` times that (plus ``(S-1) * R`` in
the fire window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model.kinds.base import (Bound, Node, NodeError, Proof, TensorType, check_array,
                                      check_fits, check_weight_bits, register)
from snnfpga.model.kinds.output import Output
from snnfpga.model.widths import current_bounds


def activations(spikes: np.ndarray, window) -> np.ndarray:
    """The activations ``x = S - k`` (``int64 [N, n]``) of TTFS spikes ``bool [N, T, *shape]``
    of ``window`` (0 where an element did not fire). This is what the integrate ramp forms:
    a spike at step ``k`` of the window is added to ``V`` on ``S - k`` steps."""
    n = len(spikes)
    part = spikes[:, window.start:window.start + window.steps].reshape(n, window.steps, -1)
    ramp = np.arange(window.steps, 0, -1, dtype=np.int64)  # S - k
    return np.einsum("ntj,t->nj", part.astype(np.int64), ramp)


class _TtfsLayer:
    """What ``ttfs`` and ``ttfs_output`` share: weights on a flattened TTFS input."""

    READS_WINDOWS: ClassVar[bool] = True

    def _check_weights(self, ins) -> int:
        self.check_inputs(ins, ("spikes",))
        check_weight_bits(self.weight_bits)
        if not isinstance(self.weight, np.ndarray) or self.weight.ndim != 2 or self.weight.shape[0] < 1:
            raise NodeError("weight must be an integer array [n_out, n_in]")
        if self.weight.shape[1] != ins[0].size:
            raise NodeError(f"weight must have shape [n_out, {ins[0].size}] for the input {ins[0].describe()}, "
                            f"got {list(self.weight.shape)}")
        check_fits("weight", self.weight, self.weight_bits)
        return int(self.weight.shape[0])

    def _potential(self, xs, ins) -> np.ndarray:
        """``V = W x`` after the integrate window (``int64 [N, n_out]``). A float32 product,
        exact: with ``0 <= x <= S`` every partial sum of a row lies within ``S`` times the
        sums of its negative and positive weights, inside the proven membrane range (at
        most 24 bits)."""
        x = activations(xs[0], ins[0].window)
        return (x.astype(np.float32) @ self.weight.T.astype(np.float32)).astype(np.int64)

    def synaptic_ops(self, xs, ins):
        events = xs[0].reshape(len(xs[0]), -1).sum(axis=1, dtype=np.int64)
        return events * np.int64(self.weight.shape[0])

    def weight_count(self) -> int:
        return int(self.weight.size)


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Ttfs(_TtfsLayer, Node):
    KIND: ClassVar[str] = "ttfs"
    ARRAYS: ClassVar[dict] = {"weight": "weight_bits", "threshold": "threshold_bits", "ramp": "ramp_bits"}
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ("threshold_bits", "ramp_bits")
    REGISTERS: ClassVar[dict] = {"slope_bits": "slope", "membrane_bits": "membrane"}
    SPIKING: ClassVar[bool] = True

    weight: np.ndarray
    threshold: np.ndarray
    ramp: np.ndarray
    weight_bits: int
    threshold_bits: int = 0
    ramp_bits: int = 0
    slope_bits: int = 0
    membrane_bits: int = 0

    def infer(self, ins):
        n_out = self._check_weights(ins)
        check_array("threshold", self.threshold, (n_out,))
        check_array("ramp", self.ramp, (n_out,))
        if self.ramp.min() < 1:
            raise NodeError(f"ramps must be >= 1, found {int(self.ramp.min())}")
        return TensorType((n_out,), "spikes", window=ins[0].window.next())

    def prove(self, ins, bounds, timesteps):
        fire = ins[0].window.next()
        if fire.start + fire.steps > timesteps:
            raise NodeError(f"fires in window {fire.index} (steps {fire.start}..{fire.start + fire.steps - 1}), "
                            f"beyond the {timesteps} time steps")
        lo, hi = current_bounds(self.weight)
        s = fire.steps
        v_hi = s * hi + (s - 1) * self.ramp.astype(np.int64)
        return Proof(out=Bound.of(0, 1), registers={"slope": (int(lo.min()), int(hi.max())),
                                                     "membrane": (int((s * lo).min()), int(v_hi.max()))})

    def forward(self, xs, ins, proof=None):
        fire = ins[0].window.next()
        v = self._potential(xs, ins)
        ramp = self.ramp.astype(np.int64)
        # First k >= 0 with V + k R >= theta (the fire window's ramp), a spike if k < S.
        k = np.maximum(0, -((v - self.threshold.astype(np.int64)) // ramp))
        n, steps = xs[0].shape[:2]
        out = np.zeros((n, steps, self.weight.shape[0]), dtype=bool)
        images, neurons = np.nonzero(k < fire.steps)
        out[images, fire.start + k[images, neurons], neurons] = True
        return out

    def memory_bits(self, out):
        n = self.weight.shape[0]
        return {"weights": self.weight.size * self.weight_bits,
                "params": n * (self.threshold_bits + self.ramp_bits),
                "state": n * (self.slope_bits + self.membrane_bits + 1)}  # + the fired bit


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class TtfsOutput(_TtfsLayer, Output):
    KIND: ClassVar[str] = "ttfs_output"
    ARRAYS: ClassVar[dict] = {"weight": "weight_bits", "bias": "bias_bits"}
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ("bias_bits",)
    REGISTERS: ClassVar[dict] = {"slope_bits": "slope", "score_bits": "score"}

    weight: np.ndarray
    bias: np.ndarray
    weight_bits: int
    bias_bits: int = 0
    slope_bits: int = 0

    def infer(self, ins):
        n_out = self._check_weights(ins)
        check_array("bias", self.bias, (n_out,))
        return TensorType((n_out,), "score")

    def prove(self, ins, bounds, timesteps):
        window = ins[0].window
        if window.start + window.steps != timesteps:
            raise NodeError(f"integrates window {window.index} (steps {window.start}..{window.start + window.steps - 1}),"
                            f" so the network has {window.start + window.steps} time steps, not {timesteps}")
        lo, hi = current_bounds(self.weight)
        s, d = window.steps, self.bias.astype(np.int64)
        score = Bound.of(np.minimum(d, d + s * lo), np.maximum(d, d + s * hi))
        return Proof(out=score, registers={"slope": (int(lo.min()), int(hi.max())), "score": score.span()})

    def forward(self, xs, ins, proof=None):
        window = ins[0].window
        n, steps = xs[0].shape[:2]
        part = xs[0][:, window.start:window.start + window.steps].reshape(n, window.steps, -1)
        current = part.astype(np.float32) @ self.weight.T.astype(np.float32)  # exact: |I| < 2**24
        v = np.cumsum(np.cumsum(current.astype(np.int64), axis=1), axis=1)  # J += I; V += J
        scores = np.broadcast_to(self.bias.astype(np.int64), (n, steps, len(self.bias))).copy()
        scores[:, window.start:window.start + window.steps] += v
        scores[:, window.start + window.steps:] += v[:, -1:]
        return scores

    def memory_bits(self, out):
        n = self.weight.shape[0]
        return {"weights": self.weight.size * self.weight_bits + n * self.bias_bits, "params": 0,
                "state": n * (self.slope_bits + self.score_bits)}


def relu_forward(nodes, window_steps: int, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The integer ReLU network that a chain of ``ttfs`` layers and a ``ttfs_output`` is:
    per hidden layer ``x = clamp(floor((W x + S R - theta) / R), 0, S)``; scores ``W x + D``.

    ``x`` are the encoder's activations ``int64 [N, n_in]``; returns the hidden activations
    (one ``int64 [N, n]`` per ``ttfs`` node) and the scores. Independent of the time-domain
    reference: a test asserts that every spike time there equals ``S`` minus the activation
    here."""
    s = window_steps
    hidden = []
    for node in nodes:
        acc = x @ node.weight.T.astype(np.int64)
        if isinstance(node, Ttfs):
            r = node.ramp.astype(np.int64)
            x = np.clip((acc + s * r - node.threshold.astype(np.int64)) // r, 0, s)
            hidden.append(x)
        else:
            return hidden, acc + node.bias.astype(np.int64)
    raise ValueError("no ttfs_output node")

