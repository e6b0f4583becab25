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
def test_fire_greater_than_is_the_same_in_both_modes(seed):
    """``fire = ">"`` (snnTorch's comparison), with and without saturation."""
    art = random_artifact(seed, input_shape=(4, 4), hidden=(8, 6), n_classes=3, fire=">",
                          membrane_bits=5 if seed % 2 else None, extreme=bool(seed % 2), threshold_scale=0.3)
    assert all(layer.fire == ">" for layer in art.hidden_layers)
    _assert_same(art, random_images(art, 32, seed=seed))


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
