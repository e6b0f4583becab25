"""The torch encoder produces exactly the reference's (and the incremental rule's) spikes."""

import numpy as np
import pytest
import torch

from snnfpga.model.artifact import Encoder
from snnfpga.model.network import encode_spikes
from snnfpga.sim import reference


def _pixels(n=64, size=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size))
    x[:, :4] = [0, 1, 255, 128]
    return x


@pytest.mark.parametrize("phase", [0, 1, 127, 128, 255])
@pytest.mark.parametrize("steps", [1, 4, 8, 13])
def test_rate_encoder_equals_reference(phase, steps):
    x = _pixels(seed=phase + steps)
    ours = encode_spikes(torch.from_numpy(x), "rate", phase, steps).numpy()
    ref = reference.encode(Encoder("rate", phase=phase), x, steps)
    assert ours.dtype == np.bool_ and ours.shape == ref.shape
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("level", [1, 64, 128, 255])
def test_threshold_encoder_equals_reference(level):
    x = _pixels(seed=level)
    ours = encode_spikes(torch.from_numpy(x), "threshold", level, 5).numpy()
    assert np.array_equal(ours, reference.encode(Encoder("threshold", level=level), x, 5))


def test_rate_encoder_equals_incremental_rule():
    x = _pixels(n=8, size=256)
    x[0] = np.arange(256)
    phase, steps = 77, 9
    acc = np.full_like(x, phase)
    expected = []
    for _ in range(steps):
        acc = acc + x
        s = acc >= 256
        acc = np.where(s, acc - 256, acc)
        assert acc.max() < 511
        expected.append(s)
    ours = encode_spikes(torch.from_numpy(x), "rate", phase, steps).numpy()
    assert np.array_equal(ours, np.stack(expected, axis=1))


def test_uint8_input_is_accepted():
    x = _pixels().astype(np.uint8)
    ours = encode_spikes(torch.from_numpy(x), "rate", 128, 4).numpy()
    assert np.array_equal(ours, reference.encode(Encoder("rate", phase=128), x.astype(np.int64), 4))
