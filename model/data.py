"""Image data: loading, validation and the fixed development split.

Accepted inputs
---------------
* ``.npz`` with ``images`` (uint8 ``[N, H, W]``) and ``labels`` (uint8 ``[N]``, 0..9);
* the standard MNIST IDX files, gzipped or not: pass the *images* file
  (``*-images-idx3-ubyte[.gz]``); the labels file beside it is found by the standard name
  (``images-idx3`` -> ``labels-idx1``);
* the word ``default``: the bundled 8,000-image MNIST subset (CC BY-SA 3.0, LeCun, Cortes,
  Burges; see ``model/datasets/README.md``).

Anything else raises :class:`~snnfpga.errors.DataError` with a one-line message.

Development split
-----------------
Fixed and documented: the last ``N // 8`` images are the validation split, the others the
training split. For the bundled set that is 7,000 train / 1,000 validation images.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from snnfpga.errors import DataError

NUM_CLASSES = 10
VALIDATION_FRACTION_DENOMINATOR = 8
SPLITS = ("all", "train", "val")


@dataclass(frozen=True)
class Dataset:
    """Images ``uint8 [N, H, W]`` and labels ``uint8 [N]`` (0..9)."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: slice | np.ndarray) -> "Dataset":
        return Dataset(self.images[index], self.labels[index], self.source)

    def split(self, name: str) -> "Dataset":
        """The fixed development split ``train`` or ``val``, or ``all``."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name == "all":
            return self
        n_val = len(self) // VALIDATION_FRACTION_DENOMINATOR
        if n_val == 0:
            raise DataError(f"{self.source}: {len(self)} images are too few for a validation split")
        cut = len(self) - n_val
        return self.subset(slice(cut, None) if name == "val" else slice(0, cut))

    def limit(self, n: int | None) -> "Dataset":
        """The first ``n`` images (all when ``n`` is None)."""
        if n is None:
            return self
        if n < 1:
            raise DataError(f"--limit must be at least 1, got {n}")
        return self.subset(slice(0, n))

    def require_input_shape(self, shape: tuple[int, int]) -> "Dataset":
        """This dataset, if its images are ``shape`` (a model's ``input_shape``); else DataError."""
        got = tuple(self.images.shape[1:])
        if got != tuple(shape):
            raise DataError(f"{self.source}: images are {got[0]}x{got[1]} but the model expects {shape[0]}x{shape[1]}")
        return self


def default_dataset_path() -> Path:
    """Path of the bundled MNIST subset."""
    return Path(str(resources.files("snnfpga.model") / "datasets" / "mnist8k.npz"))


def load_dataset(path: str | Path) -> Dataset:
    """Load and validate a data set (see the module docstring for the formats)."""
    if str(path) == "default":
        path = default_dataset_path()
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass an .npz file or an MNIST IDX images file")
    name = path.name.lower()
    if "idx3" in name:
        images = _read_idx(path, ndim=3)
        labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1"))
        if labels_path == path or not labels_path.exists():
            raise DataError(f"{path}: labels file not found beside it (looked for {labels_path.name})")
        labels = _read_idx(labels_path, ndim=1)
    else:
        images, labels = _read_npz(path)
    return validate(images, labels, source=str(path))


def validate(images: np.ndarray, labels: np.ndarray, source: str = "<arrays>") -> Dataset:
    """Check shapes, dtypes and label range; return a :class:`Dataset`."""
    if images.ndim != 3:
        raise DataError(f"{source}: images must have shape [N, H, W], got {list(images.shape)}")
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 (0..255), got {images.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must have shape [N], got {list(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got {labels.dtype}")
    if len(labels) != len(images):
        raise DataError(f"{source}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{source}: the data set is empty")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        bad = int(labels[(labels < 0) | (labels >= NUM_CLASSES)][0])
        raise DataError(f"{source}: labels must be in 0..{NUM_CLASSES - 1}, found {bad}")
    return Dataset(np.ascontiguousarray(images), labels.astype(np.uint8), source)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive) and not an MNIST IDX file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("images", "labels") if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(missing)} (found: {', '.join(archive.files) or 'none'})")
            return archive["images"], archive["labels"]
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4")}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a readable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[3] != ndim:
        raise DataError(f"{path}: IDX file has {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX payload is {len(raw) - header} bytes, header promises {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
