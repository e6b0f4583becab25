"""Seeded, deterministic training on CPU: QAT, fold, integer fine-tune, export.

:func:`train` writes a model directory::

    DIR/manifest.json, DIR/arrays.npz   the integer artifact (widths proven on export)
    DIR/checkpoint.pt                   the float QAT model (see snnfpga.model.checkpoint)
    DIR/training.json                   config, seed, data digest, history, accuracies

Determinism: a fixed torch thread count (``config.threads``; 1 by default, because on a
shared 2-core machine two intra-op threads stall each other behind a busy core, up to 10x
slower), ``torch.use_deterministic_algorithms(True)``, ``torch.manual_seed(seed)`` for the
initial weights and one explicit generator for batch order and augmentation. The same
config and data give the same bytes in every file (no timestamps, no wall-clock figures).

Under ``torchrun`` with several processes the QAT epochs are data-parallel
(:mod:`snnfpga.model.distributed`: its sampler, seed and BatchNorm rules); rank 0 alone
folds, fine-tunes, exports and writes, the others return None. One process runs the code
path above unchanged.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from snnfpga.model import distributed as dist_mod
from snnfpga.model import fold as fold_mod
from snnfpga.model.artifact import save_artifact
from snnfpga.model.augment import augment, batches
from snnfpga.model.checkpoint import CHECKPOINT, save_checkpoint
from snnfpga.model.config import TrainConfig
from snnfpga.model.data import NUM_CLASSES, Dataset
from snnfpga.model.network import build_model
from snnfpga.sim import reference

TRAINING_JSON = "training.json"


def setup_determinism(config: TrainConfig) -> torch.Generator:
    """Fix threads, algorithms and seeds; return the generator for data order and augmentation."""
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN (a guard against reading
    # uninitialised memory, which this code never does): 10% of a mixer step, so off.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.manual_seed(config.seed)
    return torch.Generator().manual_seed(config.seed)


def data_digest(dataset: Dataset) -> str:
    """SHA-256 of the images and labels (provenance without paths)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(dataset.images).tobytes())
    h.update(np.ascontiguousarray(dataset.labels).tobytes())
    return h.hexdigest()


class _Progress:
    """A tqdm bar on standard error over all QAT and fine-tune batches (or nothing)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=sys.stderr, unit="batch", dynamic_ncols=True, leave=False)

    def __call__(self):
        if self.bar is not None:
            self.bar.update(1)

    def describe(self, text: str):
        if self.bar is not None:
            self.bar.set_description(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train(config: TrainConfig, dataset: Dataset, out_dir: str | Path, progress: bool = True,
          data_label: str | None = None) -> dict | None:
    """Train on ``dataset.split('train')``, export to ``out_dir``; return the training summary.

    The validation split is measured after every epoch and at the end, never used to select.
    Data-parallel under torchrun (see module doc): ranks other than 0 return None.
    """
    generator = setup_determinism(config)
    parallel = dist_mod.is_distributed()
    if parallel:
        generator = dist_mod.rank_generator(config.seed)
        progress = progress and dist_mod.rank() == 0
    train_set, val_set = dataset.split("train"), dataset.split("val")
    input_shape = tuple(int(x) for x in dataset.images.shape[1:])
    images = torch.from_numpy(np.ascontiguousarray(train_set.images))
    labels = torch.from_numpy(train_set.labels.astype(np.int64))
    val_images = torch.from_numpy(np.ascontiguousarray(val_set.images))
    val_labels = torch.from_numpy(val_set.labels.astype(np.int64))

    model = build_model(config, input_shape, n_classes=NUM_CLASSES)
    step = dist_mod.wrap(model) if parallel else model  # the training forward pass
    per_epoch = (len(images) + config.batch_size - 1) // config.batch_size
    if parallel:
        per_epoch = dist_mod.steps_per_epoch(len(images), config.batch_size)
    bar = _Progress(per_epoch * (config.epochs + config.finetune_epochs), progress)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * per_epoch
    if config.schedule == "onecycle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    elif config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    # Scores to logits: rate-coded models sum T steps; a TTFS model says its own (and adds
    # its activity term).
    loss_scale = getattr(model, "loss_scale", 1.0 / config.timesteps)
    regularizer = getattr(model, "regularizer", None)
    history = []
    for epoch in range(config.epochs):
        bar.describe(f"QAT epoch {epoch + 1}/{config.epochs}")
        model.train()
        total_loss, correct, seen = 0.0, 0, len(images)
        order = (dist_mod.epoch_batches(len(images), config.batch_size, config.seed, epoch) if parallel
                 else batches(len(images), config.batch_size, generator))
        for index in order:
            spikes = model.encode(augment(images[index], config, generator))
            scores = step(spikes)
            loss = F.cross_entropy(scores * loss_scale, labels[index], label_smoothing=config.label_smoothing)
            if regularizer is not None:
                loss = loss + regularizer()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((scores.argmax(dim=1) == labels[index]).sum())
            bar()
        if parallel:  # the whole step's figures: every rank's images (the sampler's padding included)
            total_loss, correct, seen = dist_mod.sum_over_ranks(total_loss, correct, sum(map(len, order)))
        val_acc = _accuracy(model.classify(val_images), val_labels)
        history.append({"epoch": epoch + 1, "loss": round(total_loss / seen, 6),
                        "train_accuracy": round(100.0 * correct / seen, 4), "val_accuracy_float": val_acc})

    if parallel:
        dist_mod.plain_batchnorm(model)
        if dist_mod.rank() != 0:
            bar.close()
            return None
    model.eval()
    net = fold_mod.fold(model, input_shape)
    bar.describe("integer fine-tune")
    finetune_history = fold_mod.finetune(net, images, labels, generator, val=(val_images, val_labels), progress=bar)
    bar.close()

    provenance = {"preset": config.name, "seed": config.seed, "data": data_label or dataset.source,
                  "data_sha256": data_digest(dataset),
                  "command": f"snnfpga train --data {data_label or 'FILE'} --out DIR --preset {config.name}"
                             f" --epochs {config.epochs} --finetune-epochs {config.finetune_epochs} --seed {config.seed}"}
    art = fold_mod.export(net, provenance=provenance)
    out_dir = Path(out_dir)
    save_artifact(art, out_dir)
    save_checkpoint(model, input_shape, out_dir / CHECKPOINT)

    trace = reference.run(art, val_set.images, record=True)
    int_classes = torch.from_numpy(trace.classes)
    matches = bool(torch.equal(int_classes, fold_mod.integer_classes(net, val_images)))
    if not matches:  # a bug, not a user error: the fine-tuned model is not what was exported
        raise RuntimeError("the folded integer model disagrees with the integer reference")
    acc_float = _accuracy(model.classify(val_images), val_labels)
    acc_int = _accuracy(int_classes, val_labels)
    summary = {
        "config": config.to_json(),
        "seed": config.seed,
        "data": {"source": data_label or dataset.source, "sha256": data_digest(dataset),
                 "train_images": len(train_set), "val_images": len(val_set)},
        "history": history,
        "finetune_history": finetune_history,
        "accuracy_unit": "percent",
        "val_accuracy_float": acc_float,
        "val_accuracy_int": acc_int,
        "gap": round(acc_float - acc_int, 4),
        "val_spikes_per_neuron": round(float(reference.spikes_per_neuron(art, trace).mean()), 4),
        "val_synaptic_ops": round(float(reference.synaptic_ops(art, trace).mean()), 2),
        "val_input_spikes_per_step": round(float(trace.spike_counts()[0].mean()) / art.timesteps, 2),
        "integer_model_matches_reference": matches,
    }
    if parallel:
        summary["data_parallel"] = {"world_size": dist_mod.world_size(), "backend": str(torch.distributed.get_backend()),
                                    "sampler": "DistributedSampler(seed=config.seed, shuffle, set_epoch)",
                                    "local_batch_size": dist_mod.local_batch_size(config.batch_size)}
    (out_dir / TRAINING_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _accuracy(classes: torch.Tensor, labels: torch.Tensor) -> float:
    """Percent correct, rounded to 4 decimals."""
    return round(100.0 * float((classes == labels).double().mean()), 4)
