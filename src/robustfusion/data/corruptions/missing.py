"""Missing modality: each selected sample loses the modality with probability ``severity`` (0-1).

The modality becomes absent in ``Batch.present`` and its input is zeroed. :func:`corrupt` then
makes sure no sample loses every modality (it keeps one, chosen by a seeded draw).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts
from robustfusion.registry import CORRUPTIONS
from robustfusion.rng import Stream

_DRAW = Stream("missing")


@CORRUPTIONS.register(
    "missing",
    "each modality absent with probability severity (never all of a sample)",
    facts=CorruptionFacts(
        unit="probability a modality is absent",
        default_severities=(0.0, 0.2, 0.4, 0.6, 0.8),
        quick_severities=(0.0, 0.5),
        bounded=True,
        removes_modalities=True,
        rank=3,
    ),
)
def missing(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    keep = _DRAW.uniform(seeds.to(x.device), dtype=torch.float64) >= severity
    mask = keep.reshape((x.shape[0],) + (1,) * (x.dim() - 1))
    return x * mask.to(x.dtype), keep
