"""Differentiable spiking neurons shared by the QAT model and the folded integer model.

Tensors are *time-major*: ``[T, ...]`` (a synapse sees ``[T*N, ...]``, a view of the same
memory). Every function here computes exactly the contract's neuron
(``docs/integer-contract.md``) in its float or integer-unit form, with sigmoid surrogate
gradients for the spike: ``d spike / dx = alpha * sig(alpha x) * (1 - sig(alpha x))``.

* :func:`lif_float`: the float LIF with threshold 1: ``v = v * (1 - 2**-k) + I``, spike
  ``v >= 1``, reset to 0 or by 1 with the reset detached. One autograd node for all ``T``
  steps (its backward is the same back-propagation through time that autograd would do),
  which halves training memory and time on the CPU.
* :func:`lif_integer`: the same neuron in integer units with a learned threshold and the
  floor-shift leak ``v - floor(v * 2**-k)`` (straight-through gradient for the floor), also
  one autograd node.
* :func:`glif_scan`: the binary group LIF along one axis (strict ``u > theta``).
"""

from __future__ import annotations

import torch


def surrogate(x: torch.Tensor, alpha: float) -> torch.Tensor:
    sig = torch.sigmoid(alpha * x)
    return alpha * sig * (1 - sig)


class SpikeFn(torch.autograd.Function):
    """Heaviside ``x >= 0`` (or ``x > 0`` when ``strict``) forward; sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, x, alpha, strict):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return ((x > 0) if strict else (x >= 0)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate(x, ctx.alpha), None, None


def spike(x: torch.Tensor, alpha: float, strict: bool = False) -> torch.Tensor:
    return SpikeFn.apply(x, alpha, strict)


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor`` forward, identity backward."""
    return _FloorSTE.apply(x)


class _LifFloat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, currents, decay, reset, alpha):
        potentials = torch.empty_like(currents)  # keeps the memory format
        spikes = torch.empty_like(currents)
        v = torch.zeros_like(currents[0])
        for t in range(len(currents)):
            torch.add(currents[t], v, alpha=decay, out=potentials[t])
            v = potentials[t]
            fired = v >= 1.0
            spikes[t] = fired
            v = v.masked_fill(fired, 0.0) if reset == "zero" else v - fired.to(v.dtype)
        # The surrogate's slope at every potential, computed in place: what backward needs.
        slope = potentials.sub_(1.0).mul_(alpha).sigmoid_()
        slope.sub_(slope * slope).mul_(alpha)  # alpha * sig * (1 - sig)
        ctx.save_for_backward(slope, spikes)
        ctx.decay, ctx.reset = decay, reset
        return spikes

    @staticmethod
    def backward(ctx, grad):
        slope, spikes = ctx.saved_tensors
        out = grad * slope
        for t in range(len(grad) - 2, -1, -1):
            # v[t+1] = decay * u[t] + I[t+1], u[t] = v[t] (1 - s[t]) or v[t] - s[t] (reset detached)
            if ctx.reset == "zero":
                out[t].add_(out[t + 1] * (1.0 - spikes[t]), alpha=ctx.decay)
            else:
                out[t].add_(out[t + 1], alpha=ctx.decay)
        return out, None, None, None


def lif_float(currents: torch.Tensor, leak_shift: int | None, reset: str, alpha: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` (0./1.) of float LIF neurons with threshold 1 over currents ``[T, ...]``."""
    decay = 1.0 if leak_shift is None else 1.0 - 2.0 ** -leak_shift
    return _LifFloat.apply(currents, decay, reset, alpha)


class _LifInteger(torch.autograd.Function):
    @staticmethod
    def forward(ctx, currents, threshold, leak_shift, reset, alpha, integer):
        potentials = torch.empty_like(currents)
        spikes = torch.empty_like(currents)
        v = torch.zeros_like(currents[0])
        for t in range(len(currents)):
            if leak_shift is not None:
                v = v - torch.floor(v * 2.0 ** -leak_shift) if integer else v * (1.0 - 2.0 ** -leak_shift)
            v = torch.add(v, currents[t], out=potentials[t])
            fired = v >= threshold
            spikes[t] = fired
            v = v.masked_fill(fired, 0.0) if reset == "zero" else v - fired * threshold
        ctx.save_for_backward(potentials, spikes, threshold)
        ctx.decay = 1.0 if leak_shift is None else 1.0 - 2.0 ** -leak_shift
        ctx.reset, ctx.alpha = reset, alpha
        return spikes

    @staticmethod
    def backward(ctx, grad):
        potentials, spikes, theta = ctx.saved_tensors
        slope = torch.sub(potentials, theta).div_(theta).mul_(ctx.alpha).sigmoid_()
        slope.sub_(slope * slope).mul_(ctx.alpha)             # surrogate slope at x = (v - theta) / theta
        direct = slope.mul_(grad)                              # dL/dx of every step
        grad_theta = (direct * potentials).div_(theta * theta).neg_()  # d x / d theta = -v / theta^2
        out = direct.div_(theta)                               # dL/dv through the spike, then + the leak path
        for t in range(len(grad) - 2, -1, -1):
            through = out[t + 1] * ctx.decay  # v[t+1] = leak(u[t]) + I, straight-through floor
            if ctx.reset == "zero":
                out[t].addcmul_(through, 1.0 - spikes[t])
            else:
                out[t].add_(through)
                grad_theta[t].sub_(through * spikes[t])  # u = v - s * theta
        return out, _sum_to(grad_theta.sum(dim=0), theta.shape), None, None, None, None


def _sum_to(x: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``x`` over the dimensions where ``shape`` broadcasts (size 1)."""
    dims = tuple(d for d, n in enumerate(shape) if n == 1 and x.shape[d] != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


def lif_integer(currents: torch.Tensor, threshold: torch.Tensor, leak_shift: int | None, reset: str,
                alpha: float, integer: bool = True) -> torch.Tensor:
    """LIF in integer units over ``[T, ...]`` with threshold ``theta`` (a tensor broadcasting
    against one step, same number of dimensions).

    ``integer``: the floor-shift leak of the contract (straight-through gradient); otherwise
    the float leak. The surrogate sees ``(v - theta) / theta`` (threshold-normalised, as at
    threshold 1); the reset is detached; the threshold is learned through the surrogate and,
    for the subtract reset, through the subtraction. One autograd node for all steps."""
    return _LifInteger.apply(currents, threshold, leak_shift, reset, alpha, integer)


def glif_scan(currents: torch.Tensor, dim: int, group: int, leak_shift: int, threshold: torch.Tensor,
              alpha: float, integer: bool) -> torch.Tensor:
    """Binary group LIF along ``dim`` of ``currents``: groups of ``group`` positions, the
    trailing positions alone; ``u = carry * 2**-k + I`` (floor in ``integer`` mode), spike
    ``u > theta``, carry 0 after a spike (detached), no state across calls. ``threshold``
    broadcasts against ``currents`` (same number of dimensions). The surrogate sees
    ``(u - theta) / max(theta, 1)``."""
    length = currents.shape[dim]
    full = (length // group) * group
    out = []
    carry = None
    for j in range(length):
        x = currents.select(dim, j)
        th = threshold.select(dim, j if threshold.shape[dim] > 1 else 0)
        if j % group == 0 or j >= full:
            u = x
        else:
            shifted = carry * 2.0 ** -leak_shift
            u = (floor_ste(shifted) if integer else shifted) + x
        s = spike((u - th) / torch.clamp(th, min=1.0), alpha, strict=True)
        carry = u * (1.0 - s.detach())
        out.append(s)
    return torch.stack(out, dim=dim)
