"""The integer mode of the PyTorch model: the contract computed in torch integers.

:class:`IntegerSNN` is built from an :class:`~snnfpga.model.artifact.Artifact` alone and
follows ``docs/integer-contract.md`` node by node, step by step: the encoder, then each
node in topological order, with one torch function per node kind (:data:`FORWARD`,
written independently of the numpy reference: torch's own convolution and matrix
products, in float64 where torch has no integer kernel, which is exact for integers below
``2**53``). Its spikes, currents, scores and classes equal
``snnfpga.sim.reference.run``'s exactly (the tests assert integer equality, every node,
every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnfpga.model.artifact import Artifact
from snnfpga.model.graph import SOURCE
from snnfpga.model.network import encode_spikes
from snnfpga.model.widths import signed_range


@dataclass
class IntegerTrace:
    """``spikes[0]`` encoder output (``bool [N, T, H*W]``), then every spiking node's spikes
    ``bool [N, T, *shape]`` in topological order (``names`` names them); ``scores``
    ``int64 [N, n_classes]``; ``classes`` ``int64 [N]``; ``outputs`` every node's output
    with ``record="all"``."""

    spikes: list[torch.Tensor]
    scores: torch.Tensor
    classes: torch.Tensor
    names: list[str] = field(default_factory=list)
    outputs: dict | None = None


def _exact(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x).to(torch.int64)


def _steps(x: torch.Tensor) -> tuple[int, int, torch.Tensor]:
    """``[N, T, ...]`` as ``[N*T, ...]`` float64."""
    n, t = x.shape[:2]
    return n, t, x.reshape(n * t, *x.shape[2:]).to(torch.float64)


def _dense(m, node, xs):
    n, t, x = _steps(xs[0])
    return _exact(x.reshape(n * t, -1) @ m.buf(node, "weight").to(torch.float64).T).reshape(n, t, -1) \
        + m.buf(node, "bias")


def _conv(m, node, xs):
    n, t, x = _steps(xs[0])
    y = F.conv2d(x, m.buf(node, "weight").to(torch.float64), stride=node.stride, padding=node.padding)
    return _exact(y).reshape(n, t, *y.shape[1:]) + m.buf(node, "bias")[:, None, None]


def _axial(m, node, xs):
    n, t, x = _steps(xs[0])
    w = m.buf(node, "weight").to(torch.float64)
    bias = m.buf(node, "bias")
    if node.axis == "h":
        y, bias = torch.einsum("pq,bcqw->bcpw", w, x), bias[None, :, None]
    else:
        y, bias = torch.einsum("pq,bchq->bchp", w, x), bias[None, None, :]
    return _exact(y).reshape(n, t, *y.shape[1:]) + bias


def _pointwise(m, node, xs):
    n, t, x = _steps(torch.cat(xs, dim=2))
    y = F.conv2d(x, m.buf(node, "weight").to(torch.float64)[:, :, None, None])
    return _exact(y).reshape(n, t, *y.shape[1:]) + m.buf(node, "bias")[:, None, None]


def _lif_steps(m, node, xs):
    """Spikes ``bool [N, T, ...]`` and the membrane held after each step (after the reset)."""
    current = torch.stack(xs).sum(dim=0)
    lo, hi = signed_range(node.membrane_bits)
    theta = m.buf(node, "threshold")
    v = torch.zeros_like(current[:, 0])
    out = torch.zeros(current.shape, dtype=torch.bool)
    held = torch.zeros(current.shape, dtype=torch.int64)
    for t in range(current.shape[1]):
        leaked = v
        for shift in (node.leak_shift, node.leak_shift2):
            if shift is not None:  # v - floor(v / 2^k) [- floor(v / 2^k2)], both of the step's v
                leaked = leaked - torch.div(v, 1 << shift, rounding_mode="floor")
        total = leaked + current[:, t]
        if node.reset == "subtract_next" and t:  # the last step's spikes, after the leak
            total = torch.where(out[:, t - 1], total - theta, total)
        v = torch.clamp(total, lo, hi)
        fired = v > theta if node.fire == ">" else v >= theta
        if node.reset != "subtract_next":
            v = torch.where(fired, torch.zeros_like(v) if node.reset == "zero" else v - theta, v)
        out[:, t] = fired
        held[:, t] = v
    return out, held


def _lif(m, node, xs):
    return _lif_steps(m, node, xs)[0]


def _lif_output(m, node, xs):
    """Spike count above the membrane: ``count * 2^M + v + 2^(M-1)`` after each step."""
    spikes, held = _lif_steps(m, node, xs)
    scale = 1 << node.membrane_bits
    return torch.cumsum(spikes.to(torch.int64), dim=1) * scale + held + scale // 2


def _glif(m, node, xs):
    current = xs[0]
    theta = torch.broadcast_to(m.buf(node, "threshold"), current.shape[2:])
    axis = 3 if node.axis == "h" else 4  # in [N, T, C, H, W]
    length = current.shape[axis]
    full = (length // node.group) * node.group
    out = torch.zeros(current.shape, dtype=torch.bool)
    carry = None
    for j in range(length):
        if j % node.group == 0 or j >= full:
            carry = torch.zeros_like(current.select(axis, j))
        u = torch.div(carry, 1 << node.leak_shift, rounding_mode="floor") + current.select(axis, j)
        fired = u > theta.select(axis - 2, j)
        carry = torch.where(fired, torch.zeros_like(u), u)
        out.select(axis, j).copy_(fired)
    return out


def _output(m, node, xs):
    return torch.cumsum(torch.stack(xs).sum(dim=0), dim=1)


def _add(m, node, xs):
    return torch.stack(xs).sum(dim=0)


def _concat(m, node, xs):
    return torch.cat(xs, dim=2)


def _pool(m, node, xs):
    return xs[0].to(torch.int64).sum(dim=(-2, -1))


def _flatten(m, node, xs):
    return xs[0].flatten(start_dim=2)


def _ttfs_integrate(m, node, xs):
    """The integrate window, step by step: ``J += W s[k]``; ``V += J``. Returns ``V`` after
    each step of the window (``int64 [N, S, n_out]``) and the window."""
    window = m.art.graph.input_types(node)[0].window
    n = xs[0].shape[0]
    weight = m.buf(node, "weight").to(torch.float64)
    slope = torch.zeros(n, weight.shape[0], dtype=torch.int64)
    v = torch.zeros_like(slope)
    history = []
    for k in range(window.steps):
        events = xs[0][:, window.start + k].reshape(n, -1).to(torch.float64)
        slope += _exact(events @ weight.T)
        v += slope
        history.append(v.clone())
    return torch.stack(history, dim=1), window


def _ttfs(m, node, xs):
    v, window = _ttfs_integrate(m, node, xs)
    u = v[:, -1].clone()
    ramp, theta = m.buf(node, "ramp"), m.buf(node, "threshold")
    fired = torch.zeros_like(u, dtype=torch.bool)
    out = torch.zeros(u.shape[0], m.art.timesteps, u.shape[1], dtype=torch.bool)
    start = window.start + window.steps  # the fire window
    for k in range(window.steps):
        if k:
            u += ramp
        now = (u >= theta) & ~fired
        out[:, start + k] = now
        fired |= now
    return out


def _ttfs_output(m, node, xs):
    v, window = _ttfs_integrate(m, node, xs)
    scores = m.buf(node, "bias").expand(v.shape[0], m.art.timesteps, -1).clone()
    scores[:, window.start:window.start + window.steps] += v
    scores[:, window.start + window.steps:] += v[:, -1:]
    return scores


# One torch function per node kind (tests/test_kinds.py checks that every kind has one).
FORWARD = {"dense": _dense, "conv": _conv, "axial": _axial, "pointwise": _pointwise, "lif": _lif,
           "glif": _glif, "output": _output, "lif_output": _lif_output, "add": _add, "concat": _concat, "pool": _pool, "flatten": _flatten,
           "ttfs": _ttfs, "ttfs_output": _ttfs_output}


class IntegerSNN(nn.Module):
    """The contract in torch integers; every array of the artifact is a buffer."""

    def __init__(self, art: Artifact):
        super().__init__()
        self.art = art
        self._keys = {}
        for index, node in enumerate(art.nodes):
            for key in node.ARRAYS:
                buffer = f"n{index}_{key}"
                self.register_buffer(buffer, torch.from_numpy(getattr(node, key).astype(np.int64)))
                self._keys[(node.name, key)] = buffer

    def buf(self, node, key: str) -> torch.Tensor:
        return getattr(self, self._keys[(node.name, key)])

    def encode(self, images) -> torch.Tensor:
        """``bool [N, T, H*W]`` input spikes of ``uint8 [N, H, W]`` images (numpy or torch)."""
        art = self.art
        x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if x.dtype != torch.uint8:
            raise ValueError(f"images must be uint8, got {x.dtype}")
        if tuple(x.shape[1:]) not in (tuple(art.input_shape), (art.n_inputs,)):
            raise ValueError(f"images must be [N, {art.input_shape[0]}, {art.input_shape[1]}], got {list(x.shape)}")
        enc = art.encoder
        param = {"rate": enc.phase, "threshold": enc.level, "ttfs": enc.bits}[enc.kind]
        return encode_spikes(x.reshape(len(x), -1), enc.kind, param, art.timesteps)

    @torch.no_grad()
    def run(self, images, record: bool | str = False) -> IntegerTrace:
        art = self.art
        graph = art.graph
        spikes = self.encode(images)
        values = {SOURCE: spikes.reshape(len(spikes), art.timesteps, *graph.source.shape)}
        recorded, names = [spikes], [SOURCE]
        outputs = {} if record == "all" else None
        for node in graph.nodes:
            xs = [values[s] for s in node.inputs]
            out = FORWARD[node.KIND](self, node, xs)
            values[node.name] = out
            if record and node.SPIKING:
                recorded.append(out)
                names.append(node.name)
            if outputs is not None:
                outputs[node.name] = out
        scores = values[graph.output.name][:, -1]
        return IntegerTrace(spikes=recorded if record else [], scores=scores, classes=_argmax_lowest(scores),
                            names=names if record else [], outputs=outputs)

    def forward(self, images) -> torch.Tensor:
        """Scores ``int64 [N, n_classes]``."""
        return self.run(images).scores


def _argmax_lowest(scores: torch.Tensor) -> torch.Tensor:
    """Argmax over classes; on a tie the lowest index wins (explicit, not left to the backend)."""
    best = scores.max(dim=1, keepdim=True).values
    index = torch.arange(scores.shape[1]).expand_as(scores)
    return torch.where(scores == best, index, scores.shape[1]).min(dim=1).values
