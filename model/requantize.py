"""Post-training re-quantization of an artifact to another weight width (integers only).

Used by the design-space sweep (:mod:`snnfpga.sweep`) to put a trained model on the
weight-bits axis without training again. Each layer's integers are scaled by
``s = qmax(bits) / max|W|`` (``qmax(b) = 2**(b-1) - 1``, the narrow signed range of the
exporter; ``max|W|`` the layer's largest weight magnitude) and rounded half away from zero:
weights, biases and thresholds alike, so every neuron keeps its operating point
(threshold >= 1). Register widths are proven again
by :func:`~snnfpga.model.artifact.build_artifact`.

This is *not* the quantization-aware training of ``snnfpga train``: the shift leak
``v - (v >> k)`` is not scale-invariant, and fewer bits lose resolution, so a re-quantized
model's accuracy is whatever the integer reference measures on it (the sweep reports it).
"""

from __future__ import annotations

import numpy as np

from snnfpga.errors import ConfigError
from snnfpga.model.artifact import Artifact, build_artifact

MIN_BITS = 2
MAX_BITS = 8


def qmax(bits: int) -> int:
    """Largest magnitude of a narrow-range signed ``bits``-bit weight."""
    return (1 << (bits - 1)) - 1


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero to int64 (deterministic on every platform)."""
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def requantize(art: Artifact, bits: int) -> Artifact:
    """``art`` with every layer's weights re-quantized to ``bits`` bits (see the module doc).

    The same artifact when every layer already has ``bits`` bits."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"weight bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    if all(layer.weight_bits == bits for layer in art.layers):
        return art
    specs = []
    for layer in art.layers:
        s = qmax(bits) / max(1, int(np.abs(layer.weights).max()))
        spec = {"name": layer.name, "weight_bits": bits,
                "weights": np.clip(_round(layer.weights * s), -qmax(bits), qmax(bits)),
                "bias": _round(layer.bias * s)}
        if layer.spiking:
            spec.update(threshold=np.maximum(_round(layer.threshold * s), 1), leak_shift=layer.leak_shift,
                        reset=layer.reset, fire=layer.fire)
        specs.append(spec)
    provenance = {"requantized_from": {"name": art.name, "weight_bits": [layer.weight_bits for layer in art.layers],
                                       "provenance": art.provenance},
                  "method": "snnfpga.model.requantize: integers scaled by qmax(bits) / max|W|, rounded"}
    return build_artifact(f"{art.name}-w{bits}", art.input_shape, art.encoder, art.timesteps, specs,
                          provenance=provenance)
