"""The torch int64 integer mode equals the numpy reference exactly."""

import numpy as np
import pytest

from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.sim import reference


def _assert_same(art, images):
    ours = IntegerSNN(art).run(images, record=True)
    ref = reference.run(art, images, record=True)
    assert ours.scores.dtype.is_floating_point is False
    assert np.array_equal(ours.scores.numpy(), ref.scores)
    assert np.array_equal(ours.classes.numpy(), ref.classes)
    assert len(ours.spikes) == len(ref.spikes)
    for a, b in zip(ours.spikes, ref.spikes):
        assert np.array_equal(a.numpy(), b)


def test_default_model_full_validation_split():
    """Every score of every validation image, as integers."""
    art = load_artifact("default")
    val = load_dataset("default").split("val")
    assert len(val) == 1000
    _assert_same(art, val.images)


@pytest.mark.parametrize("seed", range(12))
def test_random_artifacts(seed):
    art = random_artifact(seed, input_shape=(5, 5), hidden=(9, 7), n_classes=4)
    _assert_same(art, random_images(art, 32, seed=seed))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reset", ["subtract", "subtract_next"])
def test_snntorch_semantics_are_the_same_in_both_modes(seed, reset):
    """``fire = ">"`` and the next-step subtract reset (snnTorch's), with and without saturation."""
    art = random_artifact(seed, input_shape=(4, 4), hidden=(8, 6), n_classes=3, fire=">", reset=reset,
                          membrane_bits=5 if seed % 2 else None, extreme=bool(seed % 2), threshold_scale=0.3)
    assert all(layer.fire == ">" for layer in art.hidden_layers)
    _assert_same(art, random_images(art, 32, seed=seed))


def test_the_next_step_subtract_reset_is_snntorchs_recurrence():
    """``v[t] = leak(v[t-1]) + I[t] - theta s[t-1]``, ``s[t] = v[t] > theta``, written out."""
    from snnfpga.model.kinds import Lif
    from snnfpga.model.kinds.base import TensorType

    current = np.array([[[5], [5], [0], [7], [2], [9]]])  # [N=1, T=6, 1]
    node = Lif(name="n", inputs=("i",), threshold=np.array([6]), leak_shift=1, reset="subtract_next", fire=">",
               threshold_bits=4, membrane_bits=8)
    got = node.forward([current], [TensorType((1,), "current")])[0, :, 0]
    v, s, want = 0, 0, []
    for i in current[0, :, 0]:
        v = (v - (v >> 1)) + int(i) - 6 * s
        s = int(v > 6)
        want.append(s)
    assert got.tolist() == [bool(x) for x in want] and any(want) and not all(want)


@pytest.mark.parametrize("seed", range(4))
def test_saturation_active(seed):
    art = random_artifact(seed, input_shape=(4, 4), hidden=(8,), n_classes=3, membrane_bits=5, extreme=True)
    assert art.saturates(0)
    _assert_same(art, random_images(art, 32, seed=seed))


def test_ties_go_to_the_lowest_index():
    from snnfpga.model.integer_torch import _argmax_lowest
    import torch
    scores = torch.tensor([[3, 5, 5, 1], [2, 2, 2, 2], [-1, -3, -1, -2]])
    assert _argmax_lowest(scores).tolist() == [1, 0, 0]


def test_bad_images_are_rejected():
    art = random_artifact(0, input_shape=(4, 4), hidden=(4,), n_classes=3)
    with pytest.raises(ValueError):
        IntegerSNN(art).run(np.zeros((2, 5, 5), np.uint8))
    with pytest.raises(ValueError):
        IntegerSNN(art).run(np.zeros((2, 4, 4), np.int32))
