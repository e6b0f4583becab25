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


class TraceShapeError(ValueError):
    """The two traces do not cover the same images, stages, steps or neurons."""


def check_same_structure(expected: Trace, got: Trace) -> None:
    """Raise :class:`TraceShapeError` unless both traces record the same number of images,
    the same stages (by name where both are named) and, per stage, the same steps and
    neurons, and the same classes. A missing or extra stage is never a pass."""
    n_images = len(expected.scores)
    if len(got.scores) != n_images:
        raise TraceShapeError(f"expected results for {n_images} images, got {len(got.scores)}")
    names = expected.names or [f"stage {k}" for k in range(len(expected.spikes))]
    if len(got.spikes) != len(expected.spikes):
        raise TraceShapeError(f"expected {len(expected.spikes)} recorded stages ({', '.join(names)}), "
                              f"got {len(got.spikes)}")
    if expected.names and got.names and list(expected.names) != list(got.names):
        raise TraceShapeError(f"expected the stages {', '.join(expected.names)}, got {', '.join(got.names)}")
    for k, (e, g) in enumerate(zip(expected.spikes, got.spikes)):
        if e.shape != g.shape:
            raise TraceShapeError(f"stage {k} ({names[k]}): expected [images, steps, neurons] "
                                  f"{list(e.shape)}, got {list(g.shape)}")
    if expected.scores.shape != got.scores.shape:
        raise TraceShapeError(f"expected scores {list(expected.scores.shape)}, got {list(got.scores.shape)}")


def compare(expected: Trace, got: Trace, image_offset: int = 0) -> list[Mismatch]:
    """Every mismatch, image by image in order; within an image spikes (step, layer, neuron
    order) come first, then scores, then the class. Empty when the traces are bit-exact.
    Traces of different structure raise :class:`TraceShapeError` (see
    :func:`check_same_structure`)."""
    check_same_structure(expected, got)
    out: list[Mismatch] = []
    n_layers = len(expected.spikes)
    last_step = expected.spikes[0].shape[1] - 1 if expected.spikes else 0
    # Which images differ anywhere, in one pass per array; only those are walked through.
    spike_diff = [np.asarray(e) != np.asarray(g) for e, g in zip(expected.spikes, got.spikes)]
    score_diff = np.asarray(expected.scores) != np.asarray(got.scores)
    class_diff = np.asarray(expected.classes) != np.asarray(got.classes)
    bad = class_diff | score_diff.reshape(len(score_diff), -1).any(axis=1)
    for d in spike_diff:
        bad |= d.reshape(len(d), -1).any(axis=1)
    for n in np.flatnonzero(bad):
        image = int(n) + image_offset
        for layer in range(n_layers):
            e, g = expected.spikes[layer][n], got.spikes[layer][n]
            for step, neuron in zip(*np.nonzero(spike_diff[layer][n])):
                out.append(Mismatch(image, int(step), layer, int(neuron), int(e[step, neuron]),
                                    int(g[step, neuron]), "spike"))
        for j in np.flatnonzero(score_diff[n]):
            out.append(Mismatch(image, last_step, n_layers, int(j), int(expected.scores[n, j]),
                                int(got.scores[n, j]), "score"))
        if class_diff[n]:
            out.append(Mismatch(image, last_step, n_layers, -1, int(expected.classes[n]),
                                int(got.classes[n]), "class"))
    return out


def mismatched_images(mismatches: list[Mismatch]) -> list[int]:
    """Indices of the images with at least one mismatch, ascending."""
    return sorted({m.image for m in mismatches})


@dataclass(frozen=True)
class GraphMismatch:
    """One differing integer of a graph run: image, step, node, neuron ``(c, y, x)`` (or the
    class index of a score), expected, got; for a TTFS model (``window_steps`` = S) the step
    is also named as its window and the step inside it."""

    image: int
    step: int
    node: str
    neuron: tuple
    expected: int
    got: int
    what: str  # "spike", "score" or "class"
    window_steps: int | None = None

    def __str__(self) -> str:
        where = "(" + ", ".join(map(str, self.neuron)) + ")"
        step = f"step {self.step}"
        if self.window_steps:
            step += f" (window {self.step // self.window_steps}, step {self.step % self.window_steps})"
        return (f"mismatch: image {self.image}, {step}, node {self.node}, neuron {where}: "
                f"{self.what} expected {self.expected}, got {self.got}")


def compare_graph(expected: Trace, spikes: dict, scores: np.ndarray, classes: np.ndarray,
                  image_offset: int = 0, window_steps: int | None = None) -> list[GraphMismatch]:
    """Every difference between a reference trace of a graph and what an implementation
    recorded (``spikes[node]``: counts ``[N, T, *shape]`` for every spiking node), image by
    image; :class:`TraceShapeError` unless both cover the same images, nodes, steps and
    neurons. ``window_steps``: a TTFS model's S (the encoder's ``window_steps``)."""
    n_images = len(expected.scores)
    if len(scores) != n_images or len(classes) != n_images:
        raise TraceShapeError(f"expected results for {n_images} images, got {len(scores)}")
    names = expected.names[1:]
    if set(spikes) != set(names):
        missing, extra = sorted(set(names) - set(spikes)), sorted(set(spikes) - set(names))
        raise TraceShapeError(f"the recorded nodes differ: missing {missing or 'none'}, extra {extra or 'none'}")
    for name in names:
        e = expected.node_spikes(name)
        if e.shape != spikes[name].shape:
            raise TraceShapeError(f"node {name}: expected [images, steps, *shape] {list(e.shape)}, "
                                  f"got {list(spikes[name].shape)}")
    out: list[GraphMismatch] = []
    last = expected.spikes[0].shape[1] - 1
    spike_diff = {name: expected.node_spikes(name) != spikes[name] for name in names}
    score_diff = np.asarray(expected.scores) != np.asarray(scores)
    class_diff = np.asarray(expected.classes) != np.asarray(classes)
    bad = class_diff | score_diff.reshape(n_images, -1).any(axis=1)
    for d in spike_diff.values():
        bad |= d.reshape(n_images, -1).any(axis=1)
    for n in np.flatnonzero(bad):
        image = int(n) + image_offset
        for name in names:
            e, g = expected.node_spikes(name)[n], spikes[name][n]
            for index in zip(*np.nonzero(spike_diff[name][n])):
                out.append(GraphMismatch(image, int(index[0]), name, tuple(int(v) for v in index[1:]),
                                         int(e[index]), int(g[index]), "spike", window_steps))
        for j in np.flatnonzero(score_diff[n]):
            out.append(GraphMismatch(image, last, "output", (int(j),), int(expected.scores[n, j]),
                                     int(scores[n, j]), "score", window_steps))
        if class_diff[n]:
            out.append(GraphMismatch(image, last, "output", (), int(expected.classes[n]), int(classes[n]),
                                     "class", window_steps))
    return out
