"""In-order scoreboard: compare what an implementation produced with the reference.

Both sides are :class:`snnfpga.sim.reference.Trace` objects. Spike arrays may hold counts
(an implementation that emits a spike twice shows ``2``). Layers are numbered as in the
reference: ``0`` is the encoder, ``1 .. L-1`` the hidden layers, ``L`` the output layer
(scores, reported at the last step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnfpga.sim.reference import Trace


@dataclass(frozen=True)
class Mismatch:
    """One differing integer: which image, step, layer and neuron, what was expected and got."""

    image: int
    step: int
    layer: int
    neuron: int
    expected: int
    got: int
    what: str  # "spike", "score" or "class"

    def __str__(self) -> str:
        return (f"mismatch: image {self.image}, step {self.step}, layer {self.layer}, "
                f"neuron {self.neuron}: {self.what} expected {self.expected}, got {self.got}")


def compare(expected: Trace, got: Trace, image_offset: int = 0) -> list[Mismatch]:
    """Every mismatch, image by image in order; within an image spikes (step, layer, neuron
    order) come first, then scores, then the class. Empty when the traces are bit-exact."""
    out: list[Mismatch] = []
    n_images = len(expected.scores)
    if len(got.scores) != n_images:
        raise ValueError(f"expected results for {n_images} images, got {len(got.scores)}")
    n_layers = len(expected.spikes)
    last_step = expected.spikes[0].shape[1] - 1 if expected.spikes else 0
    for n in range(n_images):
        image = n + image_offset
        for layer in range(min(n_layers, len(got.spikes))):
            e = expected.spikes[layer][n].astype(np.int64)
            g = got.spikes[layer][n].astype(np.int64)
            for step, neuron in zip(*np.nonzero(e != g)):
                out.append(Mismatch(image, int(step), layer, int(neuron), int(e[step, neuron]),
                                    int(g[step, neuron]), "spike"))
        for j in np.nonzero(expected.scores[n] != got.scores[n])[0]:
            out.append(Mismatch(image, last_step, n_layers, int(j), int(expected.scores[n, j]),
                                int(got.scores[n, j]), "score"))
        if expected.classes[n] != got.classes[n]:
            out.append(Mismatch(image, last_step, n_layers, -1, int(expected.classes[n]),
                                int(got.classes[n]), "class"))
    return out


def mismatched_images(mismatches: list[Mismatch]) -> list[int]:
    """Indices of the images with at least one mismatch, ascending."""
    return sorted({m.image for m in mismatches})
