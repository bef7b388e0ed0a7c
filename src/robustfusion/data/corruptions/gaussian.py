"""Additive Gaussian noise (METHODS.md §5): std = severity on standardised data; on images whose
``intensity_scale`` is known, severity is in 0-255 intensity units (``std = severity * scale``)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts
from robustfusion.data.corruptions.noise import add_gaussian_noise
from robustfusion.registry import CORRUPTIONS


def gaussian_std(modality: ModalityInfo, severity: float) -> float:
    """The noise std in stored units for a severity (0-255 units for images, else as is)."""
    if modality.kind == "image" and modality.intensity_scale is not None:
        return severity * modality.intensity_scale
    return severity


@CORRUPTIONS.register(
    "gaussian",
    "additive Gaussian noise; std in standardised units (0-255 for images)",
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
