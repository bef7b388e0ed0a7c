"""Additive Gaussian noise (METHODS.md §5): std = severity on standardised data; on images and maps
whose ``intensity_scale`` is known, severity is in raw units (0-255 intensity units for images,
metres for depth maps: ``std = severity * scale``)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts
from robustfusion.data.corruptions.noise import add_gaussian_noise
from robustfusion.registry import CORRUPTIONS


def gaussian_std(modality: ModalityInfo, severity: float) -> float:
    """The noise std in stored units for a severity (raw units for images and maps with a known
    scale, :attr:`~robustfusion.data.base.ModalityInfo.raw_unit_scale`; else as is)."""
    scale = modality.raw_unit_scale
    return severity if scale is None else severity * scale


@CORRUPTIONS.register(
    "gaussian",
    "additive Gaussian noise; std in standardised units (0-255 for images, metres for depth)",
    facts=CorruptionFacts(
        unit="noise std (standardised data units)",
        default_severities=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
        quick_severities=(0.0, 1.0, 4.0),
        intensity_units=True,
        rank=0,
    ),
)
def gaussian(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    std = torch.full(
        (x.shape[0],), gaussian_std(modality, severity), dtype=torch.float64, device=x.device
    )
    return add_gaussian_noise(x, std, seeds), torch.ones(
        x.shape[0], dtype=torch.bool, device=x.device
    )
