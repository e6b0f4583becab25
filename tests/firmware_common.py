"""Shared by the tests/test_firmware_*.py modules: small plans, the default model's plan, and
harness builds (cached on disk by snnfpga.firmware.fil, and per session here)."""

from __future__ import annotations

import functools
import os

import pytest

from snnfpga.commands.verilog import DEFAULT_LANES
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import runner

# Small artifacts: 15 inputs (not a multiple of 4: the last pixel word is padded), 5 lanes
# (40-bit weight words: two WEIGHT_DATA chunks), one or two hidden layers.
SMALL = {
    "one-hidden": dict(seed=63, hidden=(9,)),
    "two-hidden": dict(seed=64, hidden=(9, 6)),
}


@functools.lru_cache(maxsize=None)
def firmware_in_the_loop(art, tmp_path, capsys, lanes: int, n: int = 3, seed: int = 0, weights: str = "rom") -> dict:
    """``snnfpga firmware MODEL --weights W --run n --json`` on ``n`` random images of ``art``
    (saved under ``tmp_path``, firmware in ``tmp_path / "fw"``): the summary JSON (asserted exit 0)."""
    import json

    import numpy as np

    from snnfpga import cli
    from snnfpga.model.artifact import save_artifact

    model = save_artifact(art, tmp_path / "model")
    data = tmp_path / "data.npz"
    np.savez(data, images=random_images(art, n, seed=seed), labels=np.arange(n, dtype=np.uint8) % art.n_classes)
    args = ["firmware", str(model), "--out", str(tmp_path / "fw"), "--lanes", str(lanes), "--run", str(n),
            "--data", str(data), "--split", "all", "--weights", weights, "--json"]
    assert cli.main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def small_artifact(name: str = "one-hidden"):
    spec = SMALL[name]
    return random_artifact(spec["seed"], input_shape=(3, 5), hidden=spec["hidden"], n_classes=4, threshold_scale=0.3)


def small_plan(storage: str = "rom", name: str = "one-hidden", pixels_per_beat: int = 4):
    return make_plan(small_artifact(name), lanes=5, pixels_per_beat=pixels_per_beat, weight_storage=storage)


def small_images(n: int = 4, name: str = "one-hidden"):
    return random_images(small_artifact(name), n, seed=SMALL[name]["seed"])


@functools.lru_cache(maxsize=None)
def default_artifact():
    return load_artifact("default")


def default_plan(storage: str = "rom"):
    """The default model with the command line's default options."""
    return make_plan(default_artifact(), lanes=DEFAULT_LANES, weight_storage=storage)


def validation_images(n: int):
    return load_dataset("default").split("val").images[:n]


def require_verilator() -> None:
    """Skip (locally) or fail (CI=true) when Verilator or a C compiler cannot run here."""
    reason = runner.missing("verilator")
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Verilator is required in CI: {reason}")
    pytest.skip(reason)


_harnesses: dict = {}


def harness(plan):
    """The firmware-in-the-loop harness of ``plan`` (built once per session and cached on disk)."""
    from snnfpga.firmware import fil

    require_verilator()
    key = (id(plan.artifact), plan.lanes, plan.pixels_per_beat, plan.fifo_depth, plan.weight_storage)
    if key not in _harnesses:
        _harnesses[key] = fil.build(plan)
    return _harnesses[key]
