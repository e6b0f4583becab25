"""Running ``snnfpga`` as a user does (a subprocess: exit codes, streams, the JSON line)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from snnfpga.model.artifact import Encoder, save_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.synthetic import random_artifact


def cli(*args, timeout=600, env=None, cwd=None) -> subprocess.CompletedProcess:
    """``snnfpga ARGS...`` in a subprocess; text output captured."""
    return subprocess.run([sys.executable, "-m", "snnfpga.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def last_json(stdout: str) -> dict:
    """The JSON object a ``--json`` command prints as its last line."""
    return json.loads(stdout.strip().splitlines()[-1])


def small_mnist_model(directory: Path, n_images: int) -> tuple[Path, Path]:
    """A random 784-12-10 model (3-bit weights, no checkpoint) saved in ``directory/model``, and
    the first ``n_images`` of the bundled data in ``directory/sample.npz``: a model every
    command accepts with the real data, small enough for seconds of simulation and synthesis."""
    art = random_artifact(31, input_shape=(28, 28), hidden=(12,), n_classes=10, weight_bits=3,
                          encoder=Encoder("rate", phase=128), threshold_scale=0.2)
    d = load_dataset("default")
    np.savez(directory / "sample.npz", images=d.images[:n_images], labels=d.labels[:n_images])
    return save_artifact(art, directory / "model"), directory / "sample.npz"


def small_graph_model(directory: Path, n_images: int) -> tuple[Path, Path]:
    """A random layer graph on 28x28 MNIST pixels (every node kind; no checkpoint) saved in
    ``directory/graph``, and the first ``n_images`` of the bundled data in ``directory/sample.npz``."""
    from snnfpga.model.synthetic import random_graph

    art = random_graph(7, input_shape=(28, 28), channels=2, n_classes=10, timesteps=2, token="glif", head="pool")
    d = load_dataset("default")
    np.savez(directory / "sample.npz", images=d.images[:n_images], labels=d.labels[:n_images])
    return save_artifact(art, directory / "graph"), directory / "sample.npz"
