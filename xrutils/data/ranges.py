"""Value ranges, in one place.

Images are stored as uint8 (0..255). The GAN and the DDPM train on [-1, 1] (tanh output; Normalize(0.5, 0.5) in
the original code); the VAE and the PixelCNN on [0, 1] (sigmoid output / 256 intensity classes). Evaluators map
every family's samples into the judge's range with :func:`convert` (the original compared [0, 1] fakes with
[-1, 1] reals: spec §6 #14).
"""

from __future__ import annotations

import torch

Range = tuple[float, float]
GAN_RANGE: Range = (-1.0, 1.0)
UNIT_RANGE: Range = (0.0, 1.0)


def to_range(x_uint8: torch.Tensor, value_range: Range) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in ``value_range``; 0 maps to the low end, 255 to the high end."""
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"to_range expects uint8 images, got {x_uint8.dtype}")
    lo, hi = value_range
    return x_uint8.float().div_(255.0).mul_(hi - lo).add_(lo)


def convert(x: torch.Tensor, src: Range, dst: Range) -> torch.Tensor:
    """Affinely map float images from range ``src`` to range ``dst`` (clamped to ``dst``)."""
    if tuple(src) == tuple(dst):
        return x
    (a, b), (c, d) = src, dst
    return ((x - a) / (b - a) * (d - c) + c).clamp_(min(c, d), max(c, d))


def to_uint8(x: torch.Tensor, value_range: Range) -> torch.Tensor:
    """Float images in ``value_range`` -> uint8 0..255 (rounded, clamped)."""
    lo, hi = value_range
    return ((x.detach().float() - lo) / (hi - lo) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
