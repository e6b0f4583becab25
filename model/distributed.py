"""Data-parallel training under ``torchrun``: process group, sampler, synchronised BatchNorm.

``torchrun --nproc-per-node N -m snnfpga train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`setup` joins them into one
process group (gloo: the training loop of :mod:`snnfpga.model.train` runs on the CPU;
``$SNNFPGA_DIST_BACKEND`` names another, e.g. nccl for a CUDA build). With one process,
or without torchrun, nothing here is used and training is exactly the single-process
code path.

Rules that make a run with a given world size ``W`` deterministic (the same bytes every
time for the same ``W``; a different ``W`` is a different, equally valid run):

* every rank seeds torch with the config's seed, so all ranks build the same initial
  weights (DistributedDataParallel also broadcasts rank 0's at the start);
* the batch order is :class:`torch.utils.data.DistributedSampler` with ``seed`` = the
  config's seed, shuffling, ``set_epoch(epoch)`` before every epoch: one permutation of
  the training split per epoch, the same on every rank, dealt out rank by rank (padded by
  repeating the first indices so every rank has as many images); each rank cuts its share
  into batches of ``ceil(batch_size / W)``, so a step sees about ``batch_size`` images;
* augmentation draws from a generator seeded with ``seed + rank``;
* gradients are averaged over the ranks (DDP); BatchNorm statistics are those of the
  whole step's batch (:func:`sync_batchnorm`: torch's SyncBatchNorm on CUDA, an all-reduce
  of the per-channel sums on the CPU, where torch's refuses to run);
* rank 0 alone folds, fine-tunes in integers, exports and writes the model directory; the
  other ranks stop after the QAT epochs.
"""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist
from torch import nn

ENV_BACKEND = "SNNFPGA_DIST_BACKEND"


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def setup() -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); True when
    training is data-parallel. Without torchrun (or with one process): False, nothing done."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = os.environ.get(ENV_BACKEND) or "gloo"
        dist.init_process_group(backend=backend)
    return is_distributed()


def teardown() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_generator(seed: int) -> torch.Generator:
    """The augmentation generator of this rank: ``seed + rank``."""
    return torch.Generator().manual_seed(seed + rank())


def local_batch_size(batch_size: int) -> int:
    """Images per rank and step: ``ceil(batch_size / world size)``."""
    return math.ceil(batch_size / world_size())


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """This rank's mini-batches of epoch ``epoch`` over ``0..n-1`` (see module doc)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed,
                                 drop_last=False)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler), dtype=torch.int64).split(local_batch_size(batch_size)))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch on every rank (what the learning-rate schedule counts)."""
    per_rank = math.ceil(n / world_size())
    return math.ceil(per_rank / local_batch_size(batch_size))


def sum_over_ranks(*values: float) -> list[float]:
    """Each value summed over the ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return [float(v) for v in t]


class _SumOverRanks(torch.autograd.Function):
    """A differentiable all-reduce (sum): the gradient of every rank's input is the sum of
    the gradients of the output over the ranks."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllReduceBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training-mode statistics are those of the batch over all ranks
    (two differentiable all-reduces: the per-channel count and sum, then the squared
    deviations). Same parameters and buffers as BatchNorm1d; outside training, or with one
    process, it is BatchNorm1d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        all_reduce = _SumOverRanks.apply
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = torch.cat([x.new_tensor([x.numel() / x.shape[1]]), x.sum(dims)])
        total = all_reduce(local)
        count, mean = total[0], total[1:] / total[0]
        var = all_reduce((x - mean.view(shape)).pow(2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / max(float(count) - 1, 1.0), alpha=m)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batchnorm(model: nn.Module, cuda: bool = False) -> nn.Module:
    """The model with BatchNorm statistics over all ranks: torch's SyncBatchNorm on CUDA;
    on the CPU every BatchNorm1d switched in place to :class:`_AllReduceBatchNorm1d` (the
    same object, parameters and buffers; :func:`plain_batchnorm` switches back)."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = _AllReduceBatchNorm1d
    return model


def plain_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`sync_batchnorm` on the CPU (folding and checkpoints see BatchNorm1d)."""
    for module in model.modules():
        if type(module) is _AllReduceBatchNorm1d:
            module.__class__ = nn.BatchNorm1d
    return model


def wrap(model: nn.Module) -> nn.Module:
    """``model`` with synchronised BatchNorm inside DistributedDataParallel (CPU, gloo):
    call the returned module for the training forward pass; ``model`` itself stays usable
    (encode, classify, fold) and shares the parameters."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(sync_batchnorm(model))
