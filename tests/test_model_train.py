"""End-to-end training on a few hundred images: a loadable model directory, deterministic bytes."""

import json

import numpy as np
import pytest
import torch

from snnfpga.model.artifact import load_artifact
from snnfpga.model.checkpoint import load_checkpoint
from snnfpga.model.config import preset
from snnfpga.model.data import load_dataset
from snnfpga.model.train import train
from snnfpga.sim import reference

FILES = ("manifest.json", "arrays.npz", "checkpoint.pt", "training.json")


@pytest.fixture(scope="module")
def small():
    return load_dataset("default").subset(slice(0, 400))


def _config(**changes):
    base = {"name": "test", "hidden": (24,), "epochs": 1, "finetune_epochs": 1, "batch_size": 64,
            "schedule": "constant", "lr": 0.01}
    return preset("default").replace(**{**base, **changes})


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    summary = train(_config(), small, out, progress=False, data_label="subset")
    return out, summary


def test_training_writes_a_loadable_model_directory(trained, small):
    out, summary = trained
    for name in FILES:
        assert (out / name).is_file(), name
    art = load_artifact(out)
    assert art.sizes == [784, 24, 10] and art.timesteps == preset("default").timesteps
    assert art.provenance["preset"] == "test" and "data_sha256" in art.provenance
    model, shape = load_checkpoint(out / "checkpoint.pt")
    assert shape == (28, 28)
    val = small.split("val")
    classes = model.classify(torch.from_numpy(val.images))
    assert 100.0 * float((classes.numpy() == val.labels).mean()) == pytest.approx(summary["val_accuracy_float"], abs=1e-3)
    trace = reference.run(art, val.images)
    assert 100.0 * float((trace.classes == val.labels).mean()) == pytest.approx(summary["val_accuracy_int"], abs=1e-3)
    info = json.loads((out / "training.json").read_text())
    assert info["seed"] == 0 and info["config"]["hidden"] == [24]
    assert len(info["history"]) == 1 and len(info["finetune_history"]) == 1
    assert info["integer_model_matches_reference"] is True
    assert info["accuracy_unit"] == "percent"
    assert summary["val_accuracy_int"] > 30  # one epoch on 350 images learns something


def test_same_config_same_bytes(trained, small, tmp_path):
    out, _ = trained
    again = tmp_path / "again"
    train(_config(), small, again, progress=False, data_label="subset")
    for name in FILES:
        assert (out / name).read_bytes() == (again / name).read_bytes(), f"{name} differs between two runs"


def test_other_seed_other_weights(trained, small, tmp_path):
    out, _ = trained
    train(_config(seed=1), small, tmp_path, progress=False, data_label="subset")
    assert not np.array_equal(load_artifact(out).layers[0].weights, load_artifact(tmp_path).layers[0].weights)


def test_training_with_rotation_two_layers_and_subtract_reset(small, tmp_path):
    cfg = _config(hidden=(16, 12), augment_rotate=8.0, augment_scale=0.1, reset="subtract", leak_shift=None,
                  encoder="threshold", encoder_param=100, timesteps=3)
    summary = train(cfg, small, tmp_path, progress=False)
    art = load_artifact(tmp_path)
    assert art.sizes == [784, 16, 12, 10]
    assert all(layer.reset == "subtract" and layer.leak_shift is None for layer in art.hidden_layers)
    assert summary["integer_model_matches_reference"]
