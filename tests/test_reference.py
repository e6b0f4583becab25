"""The numpy reference against a naive scalar oracle of the contract, plus targeted semantics."""

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.model.artifact import Encoder, build_artifact
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.model.widths import leak
from snnfpga.sim import reference
from tests.contract_oracle import run_one


def assert_matches_oracle(art, images):
    trace = reference.run(art, images)
    for n, image in enumerate(images):
        spikes, scores, cls = run_one(art, image)
        for layer, expected in enumerate(spikes):
            got = trace.spikes[layer][n].astype(int).tolist()
            assert got == expected, f"image {n} layer {layer}: spikes differ"
        assert trace.scores[n].tolist() == scores, f"image {n}: scores differ"
        assert int(trace.classes[n]) == cls, f"image {n}: class differs"
    return trace


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), hidden=st.lists(st.integers(1, 9), min_size=0, max_size=2),
       narrow=st.booleans(), extreme=st.booleans())
def test_reference_equals_scalar_oracle(seed, hidden, narrow, extreme):
    art = random_artifact(seed, input_shape=(3, 4), hidden=tuple(hidden), n_classes=3,
                          membrane_bits=5 if narrow else None, extreme=extreme)
    assert_matches_oracle(art, random_images(art, 4, seed=seed))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), reset=st.sampled_from(["zero", "subtract", "subtract_next"]),
       fire=st.sampled_from([">=", ">"]), narrow=st.booleans())
def test_every_reset_and_fire_comparison_equals_the_scalar_oracle(seed, reset, fire, narrow):
    art = random_artifact(seed, input_shape=(3, 4), hidden=(7, 5), n_classes=3, reset=reset, fire=fire,
                          membrane_bits=5 if narrow else None, extreme=narrow, threshold_scale=0.4)
    assert_matches_oracle(art, random_images(art, 4, seed=seed))


def test_saturation_is_exercised_and_clamps():
    """A narrow membrane with strong positive and negative weights must hit both rails."""
    w = np.array([[7] * 16, [-8] * 16])
    art = build_artifact("sat", (4, 4), Encoder("threshold", level=1), 4,
                         [{"weights": w, "bias": [0, 0], "threshold": [15, 15], "weight_bits": 4,
                           "leak_shift": None, "reset": "subtract"},
                          {"weights": [[1, -1]], "bias": [0], "weight_bits": 2}],
                         membrane_bits=5)
    assert art.saturates(0)
    images = np.full((1, 4, 4), 255, np.uint8)
    # neuron 0: v' = sat5(v + 112) = 15 -> fires, v = 0 each step; neuron 1: v' = sat5(v - 128) = -16.
    trace = assert_matches_oracle(art, images)
    assert trace.spikes[1][0, :, 0].all() and not trace.spikes[1][0, :, 1].any()
    assert trace.scores[0, 0] == 4


def test_leak_is_a_floor_shift_for_negative_membranes():
    v = np.array([-3, -1, -2, 3, 5, -5])
    assert leak(v, 1).tolist() == [-1, 0, -1, 2, 3, -2]
    assert leak(v, None).tolist() == v.tolist()


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_reset_modes_and_negative_membranes(reset):
    # One input always on; weight 5 into neuron 0 (threshold 3), -4 into neuron 1 (goes negative).
    art = build_artifact("reset", (1, 1), Encoder("threshold", level=1), 3,
                         [{"weights": [[5], [-4]], "bias": [0, 0], "threshold": [3, 1], "weight_bits": 4,
                           "leak_shift": 1, "reset": reset},
                          {"weights": [[1, 1]], "bias": [0], "weight_bits": 2}])
    trace = assert_matches_oracle(art, np.full((1, 1, 1), 9, np.uint8))
    # zero:     v' = 5, 5, 5 -> fires every step.
    # subtract: v' = 5 -> 2; leak(2)=1 -> 6 -> 3; leak(3)=2 -> 7.
    assert trace.spikes[1][0, :, 0].all()
    assert not trace.spikes[1][0, :, 1].any()


def test_class_ties_go_to_the_lowest_index():
    art = build_artifact("tie", (1, 2), Encoder("threshold", level=1), 2,
                         [{"weights": [[1, 0]], "bias": [0], "threshold": [1], "weight_bits": 2,
                           "leak_shift": None, "reset": "zero"},
                          {"weights": [[0], [1], [1], [0]], "bias": [0, 0, 0, 1], "weight_bits": 2}])
    trace = assert_matches_oracle(art, np.array([[[255, 0]]], np.uint8))
    assert trace.scores[0].tolist() == [0, 2, 2, 2]
    assert trace.classes[0] == 1


def test_rate_encoder_closed_form_equals_incremental_rule():
    pixels = np.arange(256)[None, :]
    for phase in (0, 1, 128, 255):
        spikes = reference.encode(Encoder("rate", phase=phase), pixels, 9)
        acc = np.full(256, phase)
        for t in range(9):
            acc = acc + pixels[0]
            fired = acc >= 256
            acc = np.where(fired, acc - 256, acc)
            assert (spikes[0, t] == fired).all()
        assert (spikes[0].sum(0) == (phase + 9 * pixels[0]) // 256).all()


def test_reference_rejects_images_of_the_wrong_shape():
    art = random_artifact(1, input_shape=(3, 4))
    with pytest.raises(ValueError, match=r"\[N, 3, 4\]"):
        reference.run(art, np.zeros((2, 4, 3), np.uint8))


def _small_trace():
    art = random_artifact(4, input_shape=(3, 3), hidden=(5, 4), n_classes=3, timesteps=3)
    return art, reference.run(art, random_images(art, 4, seed=4))


def test_scoreboard_names_image_step_layer_and_neuron():
    from snnfpga.sim.scoreboard import compare

    _, expected = _small_trace()
    got = dataclasses.replace(expected, spikes=[s.astype(np.int16) for s in expected.spikes])
    assert compare(expected, got) == []
    got.spikes[2][3, 1, 2] += 1
    (first,) = compare(expected, got)
    assert (first.image, first.step, first.layer, first.neuron, first.what) == (3, 1, 2, 2, "spike")
    assert str(first).startswith("mismatch: image 3, step 1, layer 2, neuron 2: spike expected")


@pytest.mark.parametrize("damage, message", [
    (lambda t: dataclasses.replace(t, spikes=t.spikes[:-1]), "expected 3 recorded stages"),
    (lambda t: dataclasses.replace(t, spikes=[*t.spikes, t.spikes[-1]]), "expected 3 recorded stages"),
    (lambda t: dataclasses.replace(t, spikes=[t.spikes[0], t.spikes[1][:, :-1], t.spikes[2]]),
     "stage 1 (fc1): expected [images, steps, neurons] [4, 3, 5], got [4, 2, 5]"),
    (lambda t: dataclasses.replace(t, spikes=[t.spikes[0], t.spikes[1][..., :-1], t.spikes[2]]),
     "stage 1 (fc1)"),
    (lambda t: dataclasses.replace(t, scores=t.scores[:, :-1]), "expected scores [4, 3]"),
    (lambda t: dataclasses.replace(t, scores=t.scores[:-1], classes=t.classes[:-1]), "results for 4 images"),
    (lambda t: dataclasses.replace(t, names=["input", "fc1", "other"]), "expected the stages"),
])
def test_scoreboard_fails_on_missing_or_reshaped_stages(damage, message):
    """A trace that lacks a stage, a step or a neuron never passes (it used to compare only
    the stages both traces had)."""
    from snnfpga.sim.scoreboard import TraceShapeError, compare

    _, expected = _small_trace()
    with pytest.raises(TraceShapeError, match=re.escape(message)):
        compare(expected, damage(expected))
