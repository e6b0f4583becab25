"""Seeded training-time augmentation of 8-bit images and mini-batch order.

Every random draw comes from an explicit ``torch.Generator``, so a training run is a pure
function of its seed. Augmented images stay ``uint8`` (0..255): the encoder sees pixels of
the same kind as at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snnfpga.model.config import TrainConfig


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of ``0..n-1`` cut into mini-batches (the last one may be short)."""
    order = torch.randperm(n, generator=generator)
    return list(order.split(batch_size))


def augment(images: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly shift (and, if configured, rotate and scale) ``uint8 [B, H, W]`` images.

    Shift only: an exact integer translation by ``-s..s`` pixels per axis, zero fill.
    With rotation or scaling: one random affine map per image (rotation ``+-augment_rotate``
    degrees, scale ``1 +- augment_scale``, translation ``+-augment_shift`` pixels), bilinear
    resampling, rounded back to ``uint8``.
    """
    c = config
    if c.augment_rotate == 0 and c.augment_scale == 0:
        return _shift(images, c.augment_shift, generator) if c.augment_shift else images
    n, h, w = images.shape
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64) * 2 - 1
    angle = u[:, 0] * math.radians(c.augment_rotate)
    scale = 1 + u[:, 1] * c.augment_scale
    # affine_grid maps output coordinates in [-1, 1] to input coordinates.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx = u[:, 2] * c.augment_shift * 2 / w
    ty = u[:, 3] * c.augment_shift * 2 / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).float()
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    out = F.grid_sample(images[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.clamp(torch.round(out[:, 0]), 0, 255).to(torch.uint8)


def _shift(images: torch.Tensor, s: int, generator: torch.Generator) -> torch.Tensor:
    n, h, w = images.shape
    offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
    padded = F.pad(images, (s, s, s, s))
    rows = offsets[:, 0, None] + torch.arange(h)[None, :]
    cols = offsets[:, 1, None] + torch.arange(w)[None, :]
    return padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
