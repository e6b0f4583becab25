"""Artifact: deterministic round trip, width proofs, and clear rejection of bad artifacts."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnfpga.errors import ArtifactError
from snnfpga.model import artifact as A
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.model.widths import signed_bits
from snnfpga.sim import reference


def test_round_trip_is_exact_and_deterministic(tmp_path):
    art = random_artifact(7, hidden=(9, 5))
    A.save_artifact(art, tmp_path / "a")
    A.save_artifact(A.load_artifact(tmp_path / "a"), tmp_path / "b")
    for name in (A.MANIFEST, A.ARRAYS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    back = A.load_artifact(tmp_path / "a")
    for x, y in zip(art.layers, back.layers):
        assert np.array_equal(x.weights, y.weights) and np.array_equal(x.bias, y.bias)
        assert (x.threshold is None) == (y.threshold is None)
        assert x.threshold is None or np.array_equal(x.threshold, y.threshold)
        for key in ("kind", "weight_bits", "leak_shift", "reset", "bias_bits", "threshold_bits",
                    "current_bits", "membrane_bits", "score_bits"):
            assert getattr(x, key) == getattr(y, key), key


def test_signed_bits():
    assert signed_bits(0, 0) == 2
    assert signed_bits(-2, 1) == 2
    assert signed_bits(-3, 1) == 3
    assert signed_bits(0, 127) == 8
    assert signed_bits(-128, 0) == 8
    assert signed_bits(0, 128) == 9


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_proven_bounds_hold_on_random_inputs(seed):
    """Membranes and scores observed on random images never leave the proven range."""
    art = random_artifact(seed, hidden=(6,), extreme=seed % 2 == 0)
    images = random_images(art, 16, seed)
    trace = reference.run(art, images)
    lo, hi = art.bounds(len(art.layers) - 1)["score"]
    assert lo <= trace.scores.min() and trace.scores.max() <= hi
    assert signed_bits(int(trace.scores.min()), int(trace.scores.max())) <= art.layers[-1].score_bits


def corrupt(tmp_path, edit=None, arrays=None):
    art = random_artifact(3)
    d = A.save_artifact(art, tmp_path / "m")
    manifest = json.loads((d / A.MANIFEST).read_text())
    if edit:
        edit(manifest)
    if arrays is not None:
        (d / A.ARRAYS).write_bytes(arrays)
    (d / A.MANIFEST).write_text(json.dumps(manifest))
    return d


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=99), "unsupported artifact version"),
    (lambda m: m.update(format="other"), "not an snnfpga artifact"),
    (lambda m: m["arrays"].update(sha256="0" * 64), "corrupt"),
    (lambda m: m["layers"][0].update(weight_bits=2), "beyond the 2-bit range"),
    (lambda m: m["layers"][0].update(current_bits=3), "current_bits is 3"),
    (lambda m: m["layers"][0].update(saturation="active"), "saturation"),
    (lambda m: m["layers"][0].update(reset="sideways"), "reset must be"),
    (lambda m: m["layers"][0].update(leak_shift=40), "leak_shift"),
    (lambda m: m["layers"][-1].update(score_bits=2), "score_bits is 2"),
    (lambda m: m.update(timesteps=0), "timesteps"),
    (lambda m: m["encoder"].update(phase=300), "phase"),
    (lambda m: m["input"].update(height=5), "weight must have shape"),
    (lambda m: m["layers"][0].pop("membrane_bits"), "malformed manifest"),
    (lambda m: m.update(decision={"rule": "softmax"}), "decision rule"),
])
def test_inconsistent_manifests_are_rejected(tmp_path, edit, message):
    d = corrupt(tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        A.load_artifact(d)


def test_corrupt_files_are_rejected(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    (d / A.MANIFEST).write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        A.load_artifact(d)
    with pytest.raises(ArtifactError, match="not found"):
        A.load_artifact(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        A.load_artifact(tmp_path)
    d2 = corrupt(tmp_path / "x")
    (d2 / A.ARRAYS).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        A.load_artifact(d2)


def test_build_rejects_weights_beyond_their_width():
    with pytest.raises(ArtifactError, match="weight value 9 is beyond the 4-bit range"):
        A.build_artifact("w", (1, 2), A.Encoder("rate"), 2,
                         [{"weights": [[9, 0]], "bias": [0], "threshold": [1], "weight_bits": 4,
                           "leak_shift": None, "reset": "zero"},
                          {"weights": [[1]], "bias": [0], "weight_bits": 2}])


def test_narrow_membrane_is_flagged_as_saturating(tmp_path):
    art = random_artifact(5, membrane_bits=4, extreme=True)
    assert art.saturates(0)
    d = A.save_artifact(art, tmp_path / "s")
    assert json.loads((d / A.MANIFEST).read_text())["layers"][0]["saturation"] == "active"
    assert A.load_artifact(d).saturates(0)


def test_fire_greater_than_round_trips_and_a_default_manifest_does_not_name_it(tmp_path):
    """``fire = ">"`` is saved and loaded; the default (``>=``) is not written, so manifests
    from before the option are unchanged; the membrane holds ``theta + 1``."""
    greater = random_artifact(4, hidden=(6, 5), fire=">")
    d = A.save_artifact(greater, tmp_path / "gt")
    entries = json.loads((d / A.MANIFEST).read_text())["layers"]
    assert [e.get("fire") for e in entries] == [">", ">", None]
    back = A.load_artifact(d)
    assert [layer.fire for layer in back.hidden_layers] == [">", ">"]
    for layer in back.hidden_layers:
        assert (1 << (layer.membrane_bits - 1)) - 1 >= int(layer.threshold.max()) + 1
    d = A.save_artifact(random_artifact(4, hidden=(6, 5)), tmp_path / "ge")
    assert all("fire" not in e for e in json.loads((d / A.MANIFEST).read_text())["layers"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), reset=st.sampled_from(["zero", "subtract", "subtract_next"]),
       fire=st.sampled_from([">=", ">"]), leak=st.sampled_from([None, 1, 2]))
def test_the_proven_membrane_range_holds_for_every_reset_and_fire(seed, reset, fire, leak):
    """Every membrane value before saturation (the scalar oracle's) lies inside the proven
    range; a narrower one would leave it on some input."""
    from tests.contract_oracle import run_graph_one

    art = random_artifact(seed, hidden=(6,), extreme=True, fire=fire, reset=reset, leak_shift=leak,
                          threshold_scale=0.3, timesteps=6)
    name = art.layers[0].name
    lo, hi = art.graph.proofs[name].registers["membrane"]
    observed = {}
    for image in random_images(art, 8, seed):
        run_graph_one(art, image, observed)
    seen = observed[name]
    assert lo <= seen[0] and seen[1] <= hi, (seen, (lo, hi))
