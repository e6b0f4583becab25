"""Evaluate a model directory on a data set: float and integer accuracy, spikes, operations.

Accuracies are in **percent** (0..100), rounded to 4 decimals; ``gap`` is float minus
integer accuracy in percentage points. The integer figures come from the numpy reference
(``snnfpga.sim.reference``) on the artifact, the float one from ``checkpoint.pt`` (``None``
when the directory has none).
"""

from __future__ import annotations

import numpy as np

from snnfpga.errors import DataError
from snnfpga.model.artifact import Artifact, load_artifact, resolve_model_dir
from snnfpga.model.data import Dataset
from snnfpga.sim import reference

BATCH = 1000
CHECKPOINT = "checkpoint.pt"


def topology(art: Artifact) -> str:
    """``784-512-10`` for a chain, ``graph of N nodes`` otherwise."""
    return "-".join(map(str, art.sizes)) if art.is_chain else f"graph of {len(art.nodes)} nodes"


def evaluate(model: str, dataset: Dataset, batch: int = BATCH) -> dict:
    """Figures of model directory ``model`` (or a shipped model) on ``dataset`` (see the module docstring).

    Keys: ``n``, ``accuracy_float``, ``accuracy_int``, ``gap``, ``spikes_per_neuron`` (mean
    spikes per neuron of the spiking nodes per image over ``T`` steps; for a TTFS model the
    seed paper's spikes per hidden neuron), ``silent_fraction`` (mean fraction of those
    neurons that never fire in an image), ``synaptic_ops``
    (mean accumulate operations per image), ``input_spikes`` and ``hidden_spikes`` (mean
    per image; per spiking node), ``nodes`` (per node: ``spikes``, ``spikes_per_neuron``,
    ``synaptic_ops``, means per image), ``timesteps``, ``sizes`` (chains; null for graphs),
    ``topology``, ``accuracy_unit``.
    """
    directory = resolve_model_dir(model)
    art = load_artifact(directory)
    dataset.require_input_shape(art.input_shape)
    n = len(dataset)
    correct_int = 0
    parts = []
    for start in range(0, n, batch):
        part = dataset.subset(slice(start, start + batch))
        trace = reference.run(art, part.images, record=True)
        correct_int += int((trace.classes == part.labels).sum())
        parts.append(trace)
    ops = np.concatenate([reference.synaptic_ops(art, t) for t in parts]) if n else np.zeros(0)
    spn = np.concatenate([reference.spikes_per_neuron(art, t) for t in parts]) if n else np.zeros(0)
    silent = np.concatenate([reference.silent_fraction(art, t) for t in parts]) if n else np.zeros(0)
    counts = np.array([[int(c.sum()) for c in t.spike_counts()] for t in parts]).sum(axis=0)
    acc_int = 100.0 * correct_int / n
    acc_float = None
    checkpoint = directory / CHECKPOINT
    if checkpoint.exists():
        import torch  # only here: the integer figures need no torch

        from snnfpga.model.checkpoint import load_checkpoint
        float_model, float_shape = load_checkpoint(checkpoint)
        if float_shape != art.input_shape:
            raise DataError(f"{checkpoint}: input shape {float_shape} differs from the artifact's {art.input_shape}")
        classes = float_model.classify(torch.from_numpy(np.ascontiguousarray(dataset.images)), batch=batch)
        acc_float = 100.0 * float((classes.numpy() == dataset.labels).mean())
    return {
        "n": n,
        "accuracy_unit": "percent",
        "accuracy_float": None if acc_float is None else round(acc_float, 4),
        "accuracy_int": round(acc_int, 4),
        "gap": None if acc_float is None else round(acc_float - acc_int, 4),
        "spikes_per_neuron": round(float(spn.sum()) / n, 4),
        "silent_fraction": round(float(silent.sum()) / n, 4),
        "synaptic_ops": round(float(ops.sum()) / n, 2),
        "input_spikes": round(int(counts[0]) / n, 2),
        "hidden_spikes": [round(int(x) / n, 2) for x in counts[1:]],
        "nodes": _node_rows(art, parts, n),
        "timesteps": art.timesteps,
        "sizes": art.sizes if art.is_chain else None,
        "topology": topology(art),
        "model": art.name,
    }


def _node_rows(art: Artifact, parts: list, n: int) -> list[dict]:
    """Per node means per image over all batches."""
    totals = None
    for trace in parts:
        rows = reference.node_totals(art, trace)
        if totals is None:
            totals = rows
            continue
        for row, new in zip(totals, rows):
            for key in ("spikes", "synaptic_ops"):
                if key in new:
                    row[key] += new[key]
    return reference.node_means(totals or [], n)
