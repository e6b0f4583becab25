"""The integer mode of the PyTorch model: the contract computed in torch ``int64``.

:class:`IntegerSNN` is built from an :class:`~snnfpga.model.artifact.Artifact` alone and
follows ``docs/integer-contract.md`` step by step: encoder, per-step current (``int64``
matrix product of 0/1 spikes and integer weights), floor-shift leak, integrate with
saturation to ``membrane_bits``, ``v >= theta``, reset on this step, output scores summed
over ``T``, argmax with the lowest index winning ties. Its scores and classes equal
``snnfpga.sim.reference.run``'s exactly (the tests assert integer equality). No floats are
involved anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from snnfpga.model.artifact import Artifact
from snnfpga.model.network import encode_spikes
from snnfpga.model.widths import signed_range


@dataclass
class IntegerTrace:
    """``spikes[0]`` encoder output, ``spikes[l]`` hidden layer ``l`` (``bool [N, T, n_l]``);
    ``scores`` ``int64 [N, n_classes]``; ``classes`` ``int64 [N]``."""

    spikes: list[torch.Tensor]
    scores: torch.Tensor
    classes: torch.Tensor


class IntegerSNN(nn.Module):
    """The contract in torch ``int64``; all arrays are buffers copied from the artifact."""

    def __init__(self, art: Artifact):
        super().__init__()
        self.art = art
        for i, layer in enumerate(art.layers):
            self.register_buffer(f"weight_t{i}", torch.from_numpy(layer.weights.astype(np.int64).T.copy()))
            self.register_buffer(f"bias{i}", torch.from_numpy(layer.bias.astype(np.int64)))
            if layer.kind == "lif":
                self.register_buffer(f"threshold{i}", torch.from_numpy(layer.threshold.astype(np.int64)))

    def encode(self, images) -> torch.Tensor:
        """``bool [N, T, H*W]`` input spikes of ``uint8 [N, H, W]`` images (numpy or torch)."""
        art = self.art
        x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if x.dtype != torch.uint8:
            raise ValueError(f"images must be uint8, got {x.dtype}")
        if tuple(x.shape[1:]) not in (tuple(art.input_shape), (art.n_inputs,)):
            raise ValueError(f"images must be [N, {art.input_shape[0]}, {art.input_shape[1]}], got {list(x.shape)}")
        enc = art.encoder
        param = enc.phase if enc.kind == "rate" else enc.level
        return encode_spikes(x.reshape(len(x), -1), enc.kind, param, art.timesteps)

    @torch.no_grad()
    def run(self, images, record: bool = False) -> IntegerTrace:
        art = self.art
        spikes = self.encode(images)
        n, steps = len(spikes), art.timesteps
        recorded = [spikes] if record else []
        x = spikes
        scores = None
        for i, layer in enumerate(art.layers):
            w_t = getattr(self, f"weight_t{i}")
            bias = getattr(self, f"bias{i}")
            current = (x.reshape(n * steps, -1).to(torch.int64) @ w_t).reshape(n, steps, -1)
            if layer.kind == "output":
                scores = torch.zeros(n, layer.n_out, dtype=torch.int64)
                for t in range(steps):
                    scores += bias + current[:, t]
                break
            theta = getattr(self, f"threshold{i}")
            lo, hi = signed_range(layer.membrane_bits)
            v = torch.zeros(n, layer.n_out, dtype=torch.int64)
            out = torch.zeros(n, steps, layer.n_out, dtype=torch.bool)
            for t in range(steps):
                leaked = v if layer.leak_shift is None else v - (v >> layer.leak_shift)
                v = torch.clamp(leaked + bias + current[:, t], lo, hi)
                fired = v >= theta
                v = torch.where(fired, torch.zeros_like(v) if layer.reset == "zero" else v - theta, v)
                out[:, t] = fired
            if record:
                recorded.append(out)
            x = out
        return IntegerTrace(spikes=recorded, scores=scores, classes=_argmax_lowest(scores))

    def forward(self, images) -> torch.Tensor:
        """Scores ``int64 [N, n_classes]``."""
        return self.run(images).scores


def _argmax_lowest(scores: torch.Tensor) -> torch.Tensor:
    """Argmax over classes; on a tie the lowest index wins (explicit, not left to the backend)."""
    best = scores.max(dim=1, keepdim=True).values
    index = torch.arange(scores.shape[1]).expand_as(scores)
    return torch.where(scores == best, index, scores.shape[1]).min(dim=1).values
