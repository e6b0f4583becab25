"""``snnfpga train`` and ``snnfpga eval`` as a user runs them (subprocesses: exit codes, streams)."""

import numpy as np
import pytest

from snnfpga.model.data import load_dataset
from tests.cli_common import cli, last_json

EVAL_KEYS = ("n", "accuracy_float", "accuracy_int", "spikes_per_neuron", "synaptic_ops")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = load_dataset("default")
    path = tmp_path_factory.mktemp("data") / "sample.npz"
    np.savez(path, images=d.images[:240], labels=d.labels[:240])
    return path


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "bad.npz").write_bytes(b"not an npz")
    np.savez(tmp / "shape.npz", images=np.zeros((4, 5), np.uint8), labels=np.zeros(4, np.uint8))
    np.savez(tmp / "labels.npz", images=np.zeros((4, 28, 28), np.uint8), labels=np.array([0, 1, 2, 42], np.uint8))
    np.savez(tmp / "nolabels.npz", images=np.zeros((4, 28, 28), np.uint8))
    np.savez(tmp / "small.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(4, np.uint8))
    (tmp / "broken").mkdir()
    (tmp / "broken" / "manifest.json").write_text("{\n")
    (tmp / "empty").mkdir()
    return tmp


def test_train_then_eval(sample, tmp_path):
    out = tmp_path / "m"
    r = cli("train", "--data", sample, "--out", out, "--preset", "tiny", "--epochs", "1",
            "--finetune-epochs", "1", "--seed", "3", "--no-progress", "--json")
    assert r.returncode == 0, r.stderr
    info = last_json(r.stdout)
    assert info["seed"] == 3 and info["epochs"] == 1
    for name in ("manifest.json", "arrays.npz", "checkpoint.pt", "training.json"):
        assert (out / name).is_file()
    r = cli("eval", out, "--data", sample, "--json")
    assert r.returncode == 0, r.stderr
    d = last_json(r.stdout)
    assert d["n"] == 240
    for key in EVAL_KEYS:
        assert d[key] is not None, key
    assert 0 <= d["accuracy_int"] <= 100 and 0 <= d["accuracy_float"] <= 100
    assert "accuracy float" in r.stdout and "Traceback" not in r.stderr
    r = cli("eval", out, "--data", sample, "--split", "val", "--limit", "7", "--json")
    assert r.returncode == 0 and last_json(r.stdout)["n"] == 7


def test_eval_default_model_json(sample):
    r = cli("eval", "default", "--data", sample, "--limit", "100", "--json")
    assert r.returncode == 0, r.stderr
    d = last_json(r.stdout)
    assert d["n"] == 100 and d["accuracy_unit"] == "percent"
    for key in EVAL_KEYS:
        assert isinstance(d[key], (int, float)), key
    assert d["accuracy_int"] > 90


def test_eval_without_checkpoint_reports_null_float(tmp_path, sample):
    import shutil

    from snnfpga.model.artifact import default_model_dir
    for name in ("manifest.json", "arrays.npz"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    r = cli("eval", tmp_path, "--data", sample, "--limit", "20", "--json")
    assert r.returncode == 0, r.stderr
    d = last_json(r.stdout)
    assert d["accuracy_float"] is None and d["accuracy_int"] is not None


@pytest.mark.parametrize("args", [
    ("eval", "default", "--data", "{tmp}/bad.npz"),
    ("eval", "default", "--data", "{tmp}/shape.npz"),
    ("eval", "default", "--data", "{tmp}/labels.npz"),
    ("eval", "default", "--data", "{tmp}/nolabels.npz"),
    ("eval", "default", "--data", "{tmp}/missing.npz"),
    ("eval", "default", "--data", "{tmp}/small.npz"),
    ("eval", "{tmp}/broken", "--data", "default"),
    ("eval", "{tmp}/empty", "--data", "default"),
    ("eval", "{tmp}/nowhere", "--data", "default"),
    ("eval", "default", "--data", "default", "--limit", "0"),
    ("train", "--data", "{tmp}/labels.npz", "--out", "{tmp}/o"),
    ("train", "--data", "{tmp}/missing.npz", "--out", "{tmp}/o"),
    ("train", "--data", "default", "--out", "{tmp}/bad.npz"),
    ("train", "--data", "default", "--out", "{tmp}/o", "--preset", "huge"),
    ("train", "--data", "default", "--out", "{tmp}/o", "--epochs", "-2"),
])
def test_bad_input_one_line_no_traceback(bad_inputs, args):
    r = cli(*(a.format(tmp=bad_inputs) for a in args))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stderr.strip(), "an error message is expected"
    if not any(a in ("--preset", "--epochs", "--limit") for a in args):  # argparse usage errors are 2 lines
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("error: ")
