"""A small snnTorch network for interop checks: trained in snnTorch, exported by snnTorch.

What the NIR import is measured on (tests/test_nir.py, ``benchmarks/nir_snntorch.py``):
``Linear(784, H) -> Leaky -> Linear(H, 10) -> [Leaky]``, snnTorch's own neurons (``beta``,
threshold 1, its default subtract reset applied on the next step), binary input
(``pixel >= level``, the contract's threshold encoder), ``T`` steps. The readout is either
the spiking output layer's spike count, ties broken by its membrane after the last step
(``spiking_output=True``, what snnTorch users do), or the last ``Linear``'s logits summed
over the steps. Needs ``torch``, ``snntorch`` and, to export, ``nirtorch`` and ``nir``
(test dependencies: ``pip install 'snnfpga[dev]'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LeakyMlp:
    """The network and how it reads its input and output."""

    net: object  # torch.nn.Sequential
    steps: int
    level: int
    spiking_output: bool

    def inputs(self, images: np.ndarray):
        import torch

        return torch.as_tensor(images.reshape(len(images), -1) >= self.level, dtype=torch.float32)

    def run(self, images: np.ndarray):
        """Per image the output's spike counts and last membrane (spiking output), or the
        summed logits (``[N, 10]`` each; the membrane None)."""
        from snntorch import utils

        x = self.inputs(images)
        utils.reset(self.net)
        outs = [self.net(x) for _ in range(self.steps)]
        if not self.spiking_output:
            return sum(outs), None
        return sum(outs), self.net[-1].mem

    def classes(self, images: np.ndarray) -> np.ndarray:
        """snnTorch's decision: the most spikes, the higher membrane on a tie, then the lowest
        index (spiking output); the largest summed logit (summed readout)."""
        import torch

        with torch.no_grad():
            counts, membrane = self.run(images)
        counts = counts.numpy()
        if membrane is None:
            return counts.argmax(axis=1)
        membrane = membrane.numpy()
        span = 2.0 * np.abs(membrane).max() + 1.0
        return (counts * span + membrane).argmax(axis=1)

    def export_nir(self, path) -> None:
        """snnTorch's own exporter (``snntorch.export_nir.export_to_nir``), written by ``nir.write``."""
        import nir
        import torch
        from snntorch.export_nir import export_to_nir

        with torch.no_grad():
            graph = export_to_nir(self.net, torch.zeros(self.net[0].in_features))
        nir.write(path, graph)


def train_leaky_mlp(images: np.ndarray, labels: np.ndarray, *, hidden: int = 128, steps: int = 8,
                    beta: float = 0.5, spiking_output: bool = True, epochs: int = 3, batch: int = 100,
                    lr: float = 2e-3, seed: int = 0, level: int = 128, progress=None) -> LeakyMlp:
    """Train the network with snnTorch (Adam; the spiking output on snnTorch's
    ``ce_count_loss``, the summed readout on cross-entropy of the summed logits).
    ``progress(epoch, loss)`` is called after each epoch."""
    import snntorch as snn
    import torch
    from snntorch import functional as SF
    from snntorch import utils

    torch.manual_seed(seed)
    n_in = int(np.prod(images.shape[1:]))

    def leaky(n):
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True)

    layers = [torch.nn.Linear(n_in, hidden), leaky(hidden), torch.nn.Linear(hidden, 10)]
    model = LeakyMlp(torch.nn.Sequential(*layers, *([leaky(10)] if spiking_output else [])), steps, level,
                     spiking_output)
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    count_loss = SF.ce_count_loss()
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        order = rng.permutation(len(targets))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = model.inputs(images[idx])
            utils.reset(model.net)
            outs = torch.stack([model.net(x) for _ in range(steps)])
            y = targets[idx]
            loss = count_loss(outs, y) if spiking_output else torch.nn.functional.cross_entropy(outs.sum(0), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            progress(epoch, total / len(targets))
    return model
