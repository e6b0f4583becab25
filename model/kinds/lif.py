"""``lif``: a tensor of leaky integrate-and-fire neurons fed by the sum of its currents.

Inputs: one or more currents of the same shape and the same unit (skip connections add
currents, never spikes). Per neuron, state ``v`` (``membrane_bits``, signed) starts at 0 at
every image; each step, in this order:

1. ``I = sum of the input currents`` (biases included), formed exactly;
2. leak ``v_leak = v - (v >> k)`` (``leak_shift = k``), or ``v`` when ``k`` is null, or with
   a second term ``v_leak = v - (v >> k) - (v >> k2)`` (``leak_shift2 = k2 > k``, for decays
   that are not ``1 - 2^-k``: ``1 - 2^-2 - 2^-3 = 0.625``);
3. ``v' = sat(v_leak + I)`` to ``membrane_bits``;
4. spike ``v' >= theta`` (``fire = ">="``, the default) or ``v' > theta`` (``fire = ">"``,
   snnTorch's comparison; the membrane then holds ``theta + 1``);
5. reset on this step: ``v = 0`` (``zero``) or ``v = v' - theta`` (``subtract``) after a
   spike, else ``v = v'``; or (``subtract_next``, snnTorch's default) ``v = v'`` and the
   spike subtracts ``theta`` in the next step, after the leak and undecayed: step 3 is
   then ``v' = sat(v_leak + I - theta s[t-1])``.

``threshold`` (``>= 1``) has the tensor's rank with each dimension 1 or full: one per
channel ``(C, 1, 1)``, per position, or per neuron.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from snnfpga.model import widths as W
from snnfpga.model.kinds.base import (MAX_REGISTER_BITS, Bound, NodeError, Node, Proof, TensorType,
                                      check_broadcast, check_choice, check_fits, check_int_param,
                                      check_register, full_size, int_dtype, register)

RESETS = ("zero", "subtract", "subtract_next")
FIRES = (">=", ">")
DEFAULT_FIRE = ">="  # the contract's comparison before the option existed
MAX_LEAK_SHIFT = 16


@register
@dataclass(frozen=True, eq=False, kw_only=True)
class Lif(Node):
    KIND: ClassVar[str] = "lif"
    ARRAYS: ClassVar[dict] = {"threshold": "threshold_bits"}
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ("threshold_bits",)
    SPIKING: ClassVar[bool] = True
    MAX_INPUTS: ClassVar[int | None] = None
    OPTIONAL: ClassVar[dict] = {"fire": DEFAULT_FIRE, "leak_shift2": None}

    threshold: np.ndarray
    leak_shift: int | None
    reset: str
    fire: str = DEFAULT_FIRE
    leak_shift2: int | None = None
    threshold_bits: int = 0
    membrane_bits: int = 0

    def infer(self, ins):
        self.check_inputs(ins, ("current",))
        shape = self.require_same_shape(ins)
        self.require_one_unit(ins)
        check_int_param("leak_shift", self.leak_shift, 1, MAX_LEAK_SHIFT, allow_none=True)
        if self.leak_shift2 is not None:
            if self.leak_shift is None:
                raise NodeError("leak_shift2 needs a leak_shift (the leak is v - (v >> k) - (v >> k2))")
            check_int_param("leak_shift2", self.leak_shift2, self.leak_shift + 1, MAX_LEAK_SHIFT)
        check_choice("reset", self.reset, RESETS)
        check_choice("fire", self.fire, FIRES)
        check_broadcast("threshold", self.threshold, shape)
        if self.threshold.size and self.threshold.min() < 1:
            raise NodeError(f"thresholds must be >= 1, found {int(self.threshold.min())}")
        return TensorType(shape, "spikes")

    def input_bound(self, bounds: list[Bound]) -> Bound:
        total = bounds[0]
        for b in bounds[1:]:
            total = total + b
        return total

    def prove(self, ins, bounds, timesteps):
        i = self.input_bound(bounds)
        lo, hi = W.membrane_bounds(i.lo, i.hi, self.threshold, timesteps, self.leak_shift, self.reset, self.fire,
                                   self.leak_shift2)
        return Proof(out=Bound.of(0, 1), registers={"input": i.span(), "membrane": (int(lo.min()), int(hi.max()))})

    def widths(self, proof, membrane_bits=None):
        th_bits = self.fit_bits(np.concatenate([self.threshold.reshape(-1), [0]]))
        least = self._least_membrane_bits(th_bits)
        need = max(W.signed_bits(*proof.registers["membrane"]), least)
        mem = need if membrane_bits is None else min(need, max(membrane_bits, least))
        return {"threshold_bits": th_bits, "membrane_bits": mem}

    def _least_membrane_bits(self, threshold_bits: int) -> int:
        """The membrane holds every threshold (and ``theta + 1`` with ``fire = ">"``, so that a
        saturated membrane can still exceed it)."""
        if self.fire == ">":
            return max(threshold_bits, W.signed_bits(0, int(self.threshold.max()) + 1))
        return threshold_bits

    def check_widths(self, proof):
        check_fits("threshold", self.threshold, self.threshold_bits)
        check_register("input", MAX_REGISTER_BITS, proof.registers["input"])
        if self.membrane_bits < self.threshold_bits:
            raise NodeError(f"membrane_bits ({self.membrane_bits}) must be >= threshold_bits ({self.threshold_bits})")
        if self.membrane_bits < self._least_membrane_bits(self.threshold_bits):
            raise NodeError(f"membrane_bits ({self.membrane_bits}) must hold threshold + 1 with fire '>'")
        if not 2 <= self.membrane_bits <= MAX_REGISTER_BITS:
            raise NodeError(f"membrane_bits must be in 2..{MAX_REGISTER_BITS}, got {self.membrane_bits}")

    def saturates(self, proof):
        return W.signed_bits(*proof.registers["membrane"]) > self.membrane_bits

    def manifest_extras(self, proof):
        return {"saturation": "active" if self.saturates(proof) else "unreachable"}

    def forward(self, xs, ins, proof=None):
        return self.simulate(xs, proof)[0]

    def state_dtype(self, proof: Proof | None):
        """``int16`` where the proof shows every membrane value to fit, else ``int32``.

        A step forms ``v' = leak(v) + I_1 + ... (- theta s)`` by integer ``+`` and ``-``,
        which wrap modulo ``2**16`` on ``int16`` arrays: partial sums may wrap, the complete
        ``v'`` is exact when it fits. Without saturation ``v'`` lies in the proven membrane
        range; with it, in the ``membrane_bits`` range plus the proven input range (and
        ``- theta`` for ``subtract_next``), before the clip. The thresholds must fit too.
        Without a proof: ``int32`` (every register of the contract fits in 24 bits)."""
        if proof is None:
            return np.int32
        in_lo, in_hi = proof.registers["input"]
        lo, hi = proof.registers["membrane"]
        if self.saturates(proof):
            m_lo, m_hi = W.signed_range(self.membrane_bits)
            lo, hi = m_lo + min(in_lo, 0), m_hi + max(in_hi, 0)
        theta = int(self.threshold.max())
        return int_dtype(lo - theta, max(hi, theta))  # v' - theta (subtract resets); theta itself

    def simulate(self, xs, proof=None, membranes: bool = False):
        """Spikes ``bool [N, T, *shape]`` and, with ``membranes``, the membrane ``v`` held
        after each step (after the reset; ``int32 [N, T, *shape]``), else None."""
        n, steps = xs[0].shape[:2]
        shape = xs[0].shape[2:]
        lo, hi = W.signed_range(self.membrane_bits)
        clip = proof is None or self.saturates(proof)  # a no-op where the proof says it cannot act
        dtype = self.state_dtype(proof)
        theta = full_size(self.threshold, shape, dtype)
        v = np.empty((n, *shape), dtype=dtype)
        tmp = np.empty_like(v)
        tmp2 = np.empty_like(v) if self.leak_shift2 is not None else None
        keep = np.empty(v.shape, dtype=bool)
        out = np.empty((n, steps, *shape), dtype=bool)
        held = np.empty(out.shape, dtype=np.int32) if membranes else None
        fires = np.greater if self.fire == ">" else np.greater_equal
        quiet = np.less_equal if self.fire == ">" else np.less
        for t in range(steps):
            if t == 0:  # v starts at 0: no leak, and v = I
                np.copyto(v, xs[0][:, 0], casting="unsafe")
            elif self.leak_shift is not None:  # v - (v >> k) [- (v >> k2)]
                np.right_shift(v, self.leak_shift, out=tmp)
                if tmp2 is not None:
                    np.right_shift(v, self.leak_shift2, out=tmp2)
                    np.subtract(v, tmp2, out=v)
                np.subtract(v, tmp, out=v)
            for x in xs[1:] if t == 0 else xs:
                np.add(v, x[:, t], out=v, casting="unsafe")  # exact: see state_dtype
            if self.reset == "subtract_next" and t:
                np.multiply(out[:, t - 1], theta, out=tmp)
                np.subtract(v, tmp, out=v)
            if clip:
                np.clip(v, lo, hi, out=v)
            fired = out[:, t]
            if t == steps - 1 and not membranes:  # nobody reads the last reset
                fires(v, theta, out=fired)
            elif self.reset == "zero":  # v *= no spike: a product, not a masked store (much faster)
                quiet(v, theta, out=keep)
                np.logical_not(keep, out=fired)
                np.multiply(v, keep, out=v)
            else:
                fires(v, theta, out=fired)
                if self.reset == "subtract":
                    np.multiply(fired, theta, out=tmp)
                    np.subtract(v, tmp, out=v)
            if membranes:
                held[:, t] = v
        return out, held

    def memory_bits(self, out):
        return {"weights": 0, "params": self.threshold.size * self.threshold_bits,
                "state": out.size * self.membrane_bits}
