"""Bit-width proofs for the integer contract.

Given integer weights, biases and thresholds, the number of time steps ``T``, the leak
shift and the reset mode, compute exact interval bounds on every register of the
contract (see ``docs/integer-contract.md``) and the smallest two's-complement width that
holds each. The bounds are *sound*: no input spike pattern can drive a register outside
them, because they are computed by interval arithmetic over all possible spike inputs,
step by step, for every neuron.

Registers (per neuron ``j``):

* ``current``: ``I[j] = sum_i W[j, i] * s[i]`` over the input spikes of one step;
  bounded by the sums of the negative and of the positive weights of row ``j``.
* ``membrane`` (LIF neurons): ``v' = leak(v) + I[j]``, the value compared with the
  threshold, where ``I[j]`` is the neuron's input (the sum of its currents and biases);
  bounded by propagating the interval of ``v`` through leak, integrate, fire and reset for
  ``T`` steps.
* ``score`` (output neurons): ``sum_t I_t[j]``.

The node kinds (:mod:`snnfpga.model.kinds`) apply these to their own registers; currents
summed into one neuron add their intervals.
"""

from __future__ import annotations

import numpy as np


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width ``w >= 2`` with ``-2**(w-1) <= lo`` and ``hi < 2**(w-1)``."""
    lo, hi = int(min(lo, 0)), int(max(hi, 0))
    w = 2
    while lo < -(1 << (w - 1)) or hi > (1 << (w - 1)) - 1:
        w += 1
    return w


def signed_range(bits: int) -> tuple[int, int]:
    """``(min, max)`` of a two's-complement register of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def current_bounds(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron ``(lo, hi)`` of the synaptic current of one step (weights ``[n_out, n_in]``)."""
    w = weights.astype(np.int64)
    return np.minimum(w, 0).sum(axis=1), np.maximum(w, 0).sum(axis=1)


def leak(v: np.ndarray, shift: int | None, shift2: int | None = None) -> np.ndarray:
    """The contract's leak: ``v - (v >> k)`` with an arithmetic (floor) shift, or with a second
    term ``v - (v >> k) - (v >> k2)``; identity if ``k`` is None."""
    if shift is None:
        return v
    out = v - (v >> shift)
    return out if shift2 is None else out - (v >> shift2)


def leak_range(lo: np.ndarray, hi: np.ndarray, shift: int | None, shift2: int | None = None):
    """Bounds ``(lo', hi')`` of the leak over every ``v`` in ``[lo, hi]``.

    Without a second shift the leak is monotone: ``(leak(lo), leak(hi))``, exact. With two it
    is not (``v - (v >> 1) - (v >> 2)`` is 2 at 3 and 1 at 4), but ``leak(v) = c v +
    frac(v / 2^k) + frac(v / 2^k2)`` with ``c = 1 - 2^-k - 2^-k2 >= 0``, so every value lies
    in ``[c lo, c hi + 2)``: ``(ceil(c lo), ceil(c hi + 2) - 1)``, in exact integers."""
    if shift2 is None:
        return leak(lo, shift), leak(hi, shift)
    den = 1 << shift2
    num = den - (1 << (shift2 - shift)) - 1  # c = num / den
    return -((-lo * num) // den), -((-(hi * num + 2 * den)) // den) - 1


def membrane_bounds(i_lo, i_hi, threshold, timesteps: int, leak_shift: int | None, reset: str, fire: str = ">=",
                    leak_shift2: int | None = None):
    """Per-neuron ``(lo, hi)`` over all steps of ``v' = leak(v) + I`` before the comparison.

    ``[i_lo, i_hi]`` bounds the neuron's whole input per step (the sum of its currents,
    biases included); arrays broadcast together with ``threshold``. An interval of ``v`` maps
    through the leak to the interval :func:`leak_range` gives (exact for one shift). Fire and reset map ``[a, b]`` to the
    hull of ``[a, min(b, f - 1)]`` (no spike) and ``{0}`` (reset to zero) or
    ``[max(a, f) - th, b - th]`` (reset by subtraction), ``f`` the least value that fires:
    ``th`` (``fire = ">="``) or ``th + 1`` (``">"``). ``subtract_next`` keeps ``[a, b]`` and
    subtracts ``th`` from the fired part after the next step's leak.
    """
    i_lo, i_hi, th = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (i_lo, i_hi, threshold)))
    least = th + 1 if fire == ">" else th
    v_lo = np.zeros_like(i_lo)
    v_hi = np.zeros_like(i_lo)
    pre_lo = np.zeros_like(i_lo)
    pre_hi = np.zeros_like(i_lo)
    big = np.iinfo(np.int64).max
    if reset == "subtract_next":
        return _membrane_bounds_next(i_lo, i_hi, th, least, timesteps, leak_shift, leak_shift2)
    for _ in range(timesteps):
        leak_lo, leak_hi = leak_range(v_lo, v_hi, leak_shift, leak_shift2)
        a = leak_lo + i_lo
        b = leak_hi + i_hi
        pre_lo, pre_hi = np.minimum(pre_lo, a), np.maximum(pre_hi, b)
        quiet = a < least                   # some value that does not fire is reachable
        fires = b >= least                  # some value that fires is reachable
        lo = np.where(quiet, a, big)
        hi = np.where(quiet, np.minimum(b, least - 1), -big)
        if reset == "zero":
            lo = np.where(fires, np.minimum(lo, 0), lo)
            hi = np.where(fires, np.maximum(hi, 0), hi)
        else:
            lo = np.where(fires, np.minimum(lo, np.maximum(a, least) - th), lo)
            hi = np.where(fires, np.maximum(hi, b - th), hi)
        v_lo, v_hi = lo, hi
    return pre_lo, pre_hi


def _membrane_bounds_next(i_lo, i_hi, th, least, timesteps: int, leak_shift: int | None,
                          leak_shift2: int | None = None):
    """:func:`membrane_bounds` for ``reset = "subtract_next"``: ``v'[t] = leak(v'[t-1]) + I -
    th s[t-1]``. The previous ``[a, b]`` splits into its quiet part ``[a, min(b, least - 1)]``
    and its fired part ``[max(a, least), b]`` (``th`` subtracted); each maps through the
    leak (:func:`leak_range`) and the input range, and the hull is the next step's range."""
    a = i_lo.copy()  # step 0: from v = 0, no spike before
    b = i_hi.copy()
    pre_lo, pre_hi = np.minimum(a, 0), np.maximum(b, 0)
    big = np.iinfo(np.int64).max // 4
    for _ in range(timesteps - 1):
        quiet, fired = a < least, b >= least
        quiet_lo, quiet_hi = leak_range(a, np.minimum(b, least - 1), leak_shift, leak_shift2)
        fired_lo, fired_hi = leak_range(np.maximum(a, least), b, leak_shift, leak_shift2)
        lo = np.minimum(np.where(quiet, quiet_lo, big), np.where(fired, fired_lo - th, big)) + i_lo
        hi = np.maximum(np.where(quiet, quiet_hi, -big), np.where(fired, fired_hi - th, -big)) + i_hi
        a, b = lo, hi
        pre_lo, pre_hi = np.minimum(pre_lo, a), np.maximum(pre_hi, b)
    return pre_lo, pre_hi


def score_bounds(step_lo, step_hi, timesteps: int):
    """Per-neuron ``(lo, hi)`` of a score ``sum_t x_t`` over all prefixes, ``x_t`` in ``[step_lo, step_hi]``."""
    step_lo, step_hi = np.asarray(step_lo, dtype=np.int64), np.asarray(step_hi, dtype=np.int64)
    lo = np.minimum(np.minimum(step_lo, timesteps * step_lo), 0)
    hi = np.maximum(np.maximum(step_hi, timesteps * step_hi), 0)
    return lo, hi
