"""``checkpoint.pt``: the float QAT model of a model directory.

A plain dict of tensors and JSON values, loaded with ``torch.load(weights_only=True)``
(no pickled code): ``format``, ``version``, ``config`` (:meth:`TrainConfig.to_json`),
``input_shape`` ``[H, W]``, ``n_classes`` and ``state_dict`` of the float model
(:func:`snnfpga.model.network.build_model`: :class:`SpikingMLP` or a mixer graph).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from snnfpga.errors import ArtifactError, ConfigError
from snnfpga.model.config import TrainConfig
from snnfpga.model.network import SpikingMLP, build_model

CHECKPOINT = "checkpoint.pt"
FORMAT = "snnfpga.checkpoint"
VERSION = 1


def save_checkpoint(model, input_shape: tuple[int, int], path: str | Path) -> None:
    blob = {"format": FORMAT, "version": VERSION, "config": model.config.to_json(),
            "input_shape": [int(x) for x in input_shape], "n_classes": model.n_classes,
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    Path(path).write_bytes(buf.getvalue())


def load_checkpoint(path: str | Path) -> tuple[SpikingMLP, tuple[int, int]]:  # or a QatGraph
    """The float model (in eval mode) and its input shape; ArtifactError if unreadable."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (pickle, zip, runtime) for a bad file
        raise ArtifactError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an snnfpga checkpoint")
    if blob.get("version") != VERSION:
        raise ArtifactError(f"{path}: unsupported checkpoint version {blob.get('version')!r}")
    try:
        config = TrainConfig.from_json(blob["config"])
        h, w = (int(x) for x in blob["input_shape"])
        model = build_model(config, (h, w), n_classes=int(blob["n_classes"]))
        model.load_state_dict(blob["state_dict"])
    except (ConfigError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: inconsistent checkpoint ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, (h, w)
