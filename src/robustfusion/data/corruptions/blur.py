"""Gaussian blur with standard deviation ``severity`` (in pixels / bins).

2-D blur over the last two axes for images, spectrograms and maps (each channel separately);
for ``vector`` and ``timeseries`` modalities [ours] a 1-D Gaussian smoothing along the last axis,
so that every corruption applies to every dataset (for vectors it mixes neighbouring features).
Borders are replicated; the kernel spans ``ceil(3 * sigma)`` on each side.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts
from robustfusion.registry import CORRUPTIONS


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1-D Gaussian kernel of radius ``ceil(3 sigma)`` (``[2r + 1]``)."""
    radius = max(1, math.ceil(3.0 * sigma))
    pos = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (pos / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def _smooth_last(x: Tensor, kernel: Tensor) -> Tensor:
    """Convolve along the last axis of ``x`` with ``kernel`` (replicated borders)."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    radius = kernel.numel() // 2
    flat = F.pad(flat, (radius, radius), mode="replicate")
    out = F.conv1d(flat, kernel.to(flat.device, flat.dtype).view(1, 1, -1))
    return out.reshape(shape)


@CORRUPTIONS.register(
    "blur",
    "Gaussian blur, sigma = severity (2-D on images/maps, 1-D on vectors)",
    facts=CorruptionFacts(
        unit="Gaussian sigma (pixels / bins)",
        default_severities=(0.0, 0.5, 1.0, 2.0, 3.0),
        random=False,
        kinds=("image", "spectrogram", "timeseries", "map"),
        why_not="blur needs ordered axes",
        rank=2,
    ),
)
def blur(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    kernel = gaussian_kernel(severity)
    out = _smooth_last(x, kernel)
    if x.dim() >= 3 and modality.kind not in ("vector", "timeseries"):
        out = _smooth_last(out.transpose(-1, -2), kernel).transpose(-1, -2)
    return out.contiguous(), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
