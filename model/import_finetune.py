"""Integer fine-tune of an imported chain (``snnfpga import --finetune-epochs N``).

:class:`TrainableChain` holds a chain artifact's weights, biases and thresholds as float
parameters. Its forward in torch is the contract for every variant an import can produce
(fire ``>=`` or ``>``, resets ``zero``, ``subtract`` and ``subtract_next``, a leak of one or
two shift terms, membrane saturation, an ``output`` or a ``lif_output`` last layer): weights
rounded and clamped to their signed range, biases and thresholds rounded, the floor
leak, in float32, where every value is an integer below ``2**24`` and so exact. Rounding
and flooring pass gradients straight through, the spikes a sigmoid surrogate of
``(v - theta) / theta``, resets detached, so :func:`finetune` trains exactly the integers
that :meth:`TrainableChain.export` writes (a test asserts its classes equal the integer
reference's). The loss is cross-entropy on the output's scores (summed currents, scaled to
logits) or, for a spiking output, on its spike counts (snnTorch's ``ce_count_loss``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snnfpga.model.artifact import Artifact, build_artifact
from snnfpga.model.neurons import floor_ste, spike
from snnfpga.model.trainable import round_ste
from snnfpga.model.widths import signed_range

SURROGATE_ALPHA = 4.0


class TrainableChain(nn.Module):
    """The chain of ``art`` as float parameters in integer units (see the module doc)."""

    def __init__(self, art: Artifact):
        super().__init__()
        self.art = art
        self.weights = nn.ParameterList(nn.Parameter(torch.tensor(x.weights, dtype=torch.float32)) for x in art.layers)
        self.biases = nn.ParameterList(nn.Parameter(torch.tensor(x.bias, dtype=torch.float32)) for x in art.layers)
        self.thresholds = nn.ParameterList(
            nn.Parameter(torch.tensor(x.threshold if x.spiking else [1], dtype=torch.float32)) for x in art.layers)

    def integers(self, index: int) -> dict:
        """Layer ``index``'s rounded parameters as numpy integers."""
        with torch.no_grad():
            w, b, th = self._params(index)
        out = {"weights": w.numpy().astype(np.int64), "bias": b.numpy().astype(np.int64)}
        if self.art.layers[index].spiking:
            out["threshold"] = th.numpy().astype(np.int64)
        return out

    def _params(self, index: int):
        layer = self.art.layers[index]
        lo, hi = signed_range(layer.weight_bits)
        w = round_ste(torch.clamp(self.weights[index], lo, hi))
        b = round_ste(self.biases[index])
        th = round_ste(torch.clamp(self.thresholds[index], min=1.0))
        return w, b, th

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """``[N, classes]`` from input spikes ``[N, T, n_in]``: the output's scores, or a spiking
        output's spike counts (the decision's first key)."""
        x = spikes.to(torch.float32)
        for index, layer in enumerate(self.art.layers):
            w, b, th = self._params(index)
            current = x @ w.T + b  # [N, T, n_out]
            if not layer.spiking:
                return current.sum(dim=1)
            x = self._lif(layer, current, th)
        return x.sum(dim=1)

    @staticmethod
    def _lif(layer, current: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
        lo, hi = signed_range(layer.membrane_bits)
        v = torch.zeros_like(current[:, 0])
        fired = torch.zeros_like(v)
        out = []
        for t in range(current.shape[1]):
            leaked = v
            for shift in (layer.leak_shift, layer.leak_shift2):
                if shift is not None:
                    leaked = leaked - floor_ste(v * 2.0 ** -shift)
            total = leaked + current[:, t]
            if layer.reset == "subtract_next":
                total = total - th * fired.detach()
            v = torch.clamp(total, lo, hi)
            fired = spike((v - th) / th, SURROGATE_ALPHA, strict=layer.fire == ">")
            if layer.reset == "zero":
                v = v * (1.0 - fired.detach())
            elif layer.reset == "subtract":
                v = v - th * fired.detach()
            out.append(fired)
        return torch.stack(out, dim=1)

    def export(self, name: str, provenance: dict) -> Artifact:
        """The artifact of the current integers (same layers, kinds and parameters)."""
        specs = []
        for index, layer in enumerate(self.art.layers):
            spec = {"name": layer.name, "weight_bits": layer.weight_bits, **self.integers(index)}
            if layer.spiking:
                spec.update(leak_shift=layer.leak_shift, leak_shift2=layer.leak_shift2, reset=layer.reset,
                            fire=layer.fire)
            specs.append(spec)
        art = self.art
        return build_artifact(name, art.input_shape, art.encoder, art.timesteps, specs,
                              provenance=provenance)


def finetune(art: Artifact, images: np.ndarray, labels: np.ndarray, epochs: int, *, lr: float = 2e-2,
             batch: int = 100, seed: int = 0, progress=None) -> Artifact:
    """``art`` fine-tuned in integer mode for ``epochs`` epochs on ``images`` (``uint8 [N, H, W]``)
    and ``labels``; Adam at ``lr`` with cosine decay. ``progress(epoch, loss)`` after each
    epoch. The provenance records the fine-tune."""
    from snnfpga.sim.reference import encode, flatten_images

    if epochs < 1:
        return art
    model = TrainableChain(art)
    spikes = torch.from_numpy(encode(art.encoder, flatten_images(art, images), art.timesteps))
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    steps = epochs * -(-len(targets) // batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    counts = art.layers[-1].spiking
    scale = 1.0 if counts else _logit_scale(model, spikes[:500])
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        order = torch.from_numpy(rng.permutation(len(targets)))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(spikes[idx]) * scale, targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            progress(epoch, total / len(targets))
    provenance = dict(art.provenance, finetune={"epochs": epochs, "lr": lr, "images": int(len(targets)),
                                                "method": "snnfpga.model.import_finetune"})
    return model.export(art.name, provenance)


def _logit_scale(model: TrainableChain, spikes: torch.Tensor) -> float:
    """A factor that brings summed integer scores to logits of spread about 10."""
    with torch.no_grad():
        scores = model(spikes)
    return 10.0 / max(float(scores.std()), 1e-6)
