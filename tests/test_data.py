"""Data loader: formats, the fixed split, and one-line errors naming the problem."""

import gzip

import numpy as np
import pytest

from snnfpga.errors import DataError
from snnfpga.model.data import load_dataset


def write_idx(path, arr, gz):
    dims = arr.ndim
    header = bytes([0, 0, 0x08, dims]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    blob = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


def test_bundled_default_and_split():
    data = load_dataset("default")
    assert data.images.shape == (8000, 28, 28) and data.images.dtype == np.uint8
    train, val = data.split("train"), data.split("val")
    assert len(train) == 7000 and len(val) == 1000
    assert np.array_equal(val.images, data.images[7000:])
    assert len(data.split("all").limit(5)) == 5


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([0, 1, 2, 3, 9], np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    data = load_dataset(tmp_path / f"t10k-images-idx3-ubyte{suffix}")
    assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)


def npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, message", [
    (dict(images=np.zeros((4, 5), np.uint8), labels=np.zeros(4, np.uint8)), r"shape \[N, H, W\]"),
    (dict(images=np.zeros((4, 2, 2), np.float32), labels=np.zeros(4, np.uint8)), "uint8"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.array([0, 1, 2, 42])), "found 42"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.zeros(3, np.uint8)), "4 images but 3 labels"),
    (dict(images=np.zeros((4, 2, 2), np.uint8)), "missing key"),
    (dict(images=np.zeros((0, 2, 2), np.uint8), labels=np.zeros(0, np.uint8)), "empty"),
])
def test_bad_npz_files(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_dataset(npz(tmp_path, **arrays))


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not an npz")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(bad)
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12)
    with pytest.raises(DataError, match="labels file not found"):
        load_dataset(tmp_path / "x-images-idx3-ubyte")
    (tmp_path / "y-images-idx3-ubyte").write_bytes(b"garbage!")
    with pytest.raises(DataError, match="bad magic"):
        load_dataset(tmp_path / "y-images-idx3-ubyte")
