"""The integer reference: the executable specification of ``docs/integer-contract.md``.

Integer-only numpy, vectorized over a batch of images. Every other implementation (the
PyTorch integer mode, the Amaranth design, the generated Verilog) must reproduce
:func:`run` exactly: the same spikes at every step, layer and neuron, the same scores,
the same class.

Matrix products use float32 BLAS for speed; they are exact because every operand is a
small integer and every partial sum is an integer below ``2**24`` in magnitude (the
artifact validator caps register widths at 24 bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnfpga.model.artifact import Artifact, Encoder
from snnfpga.model.widths import leak, signed_range


@dataclass
class Trace:
    """What one run of the reference produced for a batch of ``N`` images.

    ``spikes[0]`` is the encoder output and ``spikes[l]`` (l >= 1) the output of hidden
    layer ``l``; each is ``bool [N, T, n_l]``. ``scores`` is ``int64 [N, n_classes]``
    (the output layer's accumulated potentials after ``T`` steps), ``classes`` the decision
    (``int64 [N]``, lowest index wins ties).
    """

    spikes: list[np.ndarray]
    scores: np.ndarray
    classes: np.ndarray

    def spike_counts(self) -> list[np.ndarray]:
        """Spikes per image for each recorded layer (``int64 [N]`` each)."""
        return [s.sum(axis=(1, 2), dtype=np.int64) for s in self.spikes]


def flatten_images(art: Artifact, images: np.ndarray) -> np.ndarray:
    """``uint8 [N, H, W]`` (or ``[N, H*W]``) to ``int64 [N, H*W]`` in row-major order."""
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == art.n_inputs:
        flat = images
    elif images.ndim == 3 and tuple(images.shape[1:]) == art.input_shape:
        flat = images.reshape(len(images), -1)
    else:
        raise ValueError(f"images must be [N, {art.input_shape[0]}, {art.input_shape[1]}], got {list(images.shape)}")
    if flat.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {flat.dtype}")
    return flat.astype(np.int64)


def encode(encoder: Encoder, pixels: np.ndarray, timesteps: int) -> np.ndarray:
    """Input spikes ``bool [N, T, n]`` from pixels ``int [N, n]`` (0..255).

    ``rate``: the incremental rule (``acc += x``; spike and ``acc -= 256`` when
    ``acc >= 256``; ``acc`` starts at ``phase``) fires at step ``t`` exactly when
    ``(phase + (t+1)*x) // 256 > (phase + t*x) // 256``, the closed form used here.
    """
    if encoder.kind == "threshold":
        return np.repeat((pixels >= encoder.level)[:, None, :], timesteps, axis=1)
    t = np.arange(timesteps + 1, dtype=np.int64)[None, :, None]
    cumulative = (encoder.phase + t * pixels[:, None, :]) >> 8
    return np.diff(cumulative, axis=1) > 0


def run(art: Artifact, images: np.ndarray, record: bool = True) -> Trace:
    """Run the contract on a batch of images; see :class:`Trace` for what comes back."""
    pixels = flatten_images(art, images)
    n = len(pixels)
    spikes_in = encode(art.encoder, pixels, art.timesteps)
    recorded = [spikes_in] if record else []
    layer_input = spikes_in
    scores = None
    for layer in art.layers:
        weights_t = layer.weights.T.astype(np.float32)
        bias = layer.bias.astype(np.int64)
        if layer.kind == "output":
            scores = np.zeros((n, layer.n_out), dtype=np.int64)
            for t in range(art.timesteps):
                scores += bias + _current(layer_input[:, t], weights_t)
            break
        lo, hi = signed_range(layer.membrane_bits)
        threshold = layer.threshold.astype(np.int64)
        v = np.zeros((n, layer.n_out), dtype=np.int64)
        out = np.zeros((n, art.timesteps, layer.n_out), dtype=bool)
        for t in range(art.timesteps):
            v = np.clip(leak(v, layer.leak_shift) + bias + _current(layer_input[:, t], weights_t), lo, hi)
            fired = v >= threshold
            v = np.where(fired, 0 if layer.reset == "zero" else v - threshold, v)
            out[:, t] = fired
        if record:
            recorded.append(out)
        layer_input = out
    return Trace(spikes=recorded, scores=scores, classes=np.argmax(scores, axis=1))


def _current(spikes: np.ndarray, weights_t: np.ndarray) -> np.ndarray:
    """``int64 [N, n_out]``: the sum of the weights of the input spikes (exact, see module doc)."""
    return np.rint(spikes.astype(np.float32) @ weights_t).astype(np.int64)


def synaptic_ops(art: Artifact, trace: Trace) -> np.ndarray:
    """Accumulate operations per image (``int64 [N]``): each input spike to layer ``l`` adds ``n_out(l)`` weights."""
    return sum(count * layer.n_out for count, layer in zip(trace.spike_counts(), art.layers))


def spikes_per_neuron(art: Artifact, trace: Trace) -> np.ndarray:
    """Mean spikes per hidden neuron per image (``float [N]``) over all ``T`` steps."""
    hidden = trace.spike_counts()[1:]
    n_hidden = sum(layer.n_out for layer in art.hidden_layers)
    if not hidden or n_hidden == 0:
        return np.zeros(len(trace.scores))
    return sum(hidden) / n_hidden
