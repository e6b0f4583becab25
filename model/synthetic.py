"""Random small artifacts, for tests and smoke runs of every stage.

:func:`random_artifact` draws a valid artifact from a seeded generator: sizes, weight bits
(2..8), leak shift (including none), reset mode, encoder, T, and optionally a membrane
width narrower than the proven range so that saturation is live.
"""

from __future__ import annotations

import numpy as np

from snnfpga.model.artifact import Artifact, Encoder, build_artifact


def random_artifact(seed: int = 0, *, input_shape=(4, 4), hidden=(12,), n_classes=4, timesteps=None,
                    weight_bits=None, leak_shift="random", reset=None, encoder=None,
                    membrane_bits=None, extreme=False, threshold_scale=1.0) -> Artifact:
    """A valid random artifact; every unset option is drawn from ``seed``.

    ``extreme`` draws weights at the ends of their range (forcing large currents and,
    with a narrow ``membrane_bits``, saturation).
    """
    rng = np.random.default_rng(seed)
    timesteps = int(rng.integers(1, 7)) if timesteps is None else timesteps
    if encoder is None:
        encoder = Encoder("rate", phase=int(rng.integers(0, 256))) if rng.random() < 0.7 else \
            Encoder("threshold", level=int(rng.integers(1, 256)))
    sizes = [input_shape[0] * input_shape[1], *hidden, n_classes]
    layers = []
    for i in range(len(sizes) - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        bits = int(rng.integers(2, 9)) if weight_bits is None else weight_bits
        wmax = (1 << (bits - 1)) - 1
        if extreme:
            weights = rng.choice([-wmax - 1, wmax], size=(n_out, n_in))
        else:
            weights = rng.integers(-wmax - 1, wmax + 1, size=(n_out, n_in))
        bias = rng.integers(-2 * wmax - 1, 2 * wmax + 2, size=n_out)
        spec = {"weights": weights, "bias": bias, "weight_bits": bits}
        if i < len(sizes) - 2:
            typical = max(1.0, wmax * np.sqrt(n_in) * threshold_scale)
            spec["threshold"] = rng.integers(1, int(typical) + 2, size=n_out)
            if leak_shift == "random":
                spec["leak_shift"] = None if rng.random() < 0.3 else int(rng.integers(1, 5))
            else:
                spec["leak_shift"] = leak_shift
            spec["reset"] = reset or ("zero" if rng.random() < 0.5 else "subtract")
        layers.append(spec)
    return build_artifact(f"random-{seed}", input_shape, encoder, timesteps, layers,
                          provenance={"generator": "snnfpga.model.synthetic", "seed": seed},
                          membrane_bits=membrane_bits)


def random_images(art: Artifact, n: int, seed: int = 0) -> np.ndarray:
    """``uint8 [n, H, W]`` images mixing blank, saturated and random pixels."""
    rng = np.random.default_rng(seed)
    h, w = art.input_shape
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    mask = rng.random((n, h, w))
    images[mask < 0.3] = 0
    images[mask > 0.9] = 255
    return images
