"""Missing modality: each selected sample loses the modality with probability ``severity`` (0-1).

The modality becomes absent in ``Batch.present`` and its input is zeroed. :func:`corrupt` then
makes sure no sample loses every modality (it keeps one, chosen by a seeded draw).
"""

from __future__ import annotations

from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import uniform_from_seeds
from robustfusion.registry import CORRUPTIONS


@CORRUPTIONS.register(
    "missing", "each modality absent with probability severity (never all of a sample)"
)
def missing(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    keep = uniform_from_seeds(seeds) >= severity
    mask = keep.to(x.device).reshape((x.shape[0],) + (1,) * (x.dim() - 1))
    return x * mask.to(x.dtype), keep
