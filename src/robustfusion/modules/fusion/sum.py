"""Sum fusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion, channelwise, per_sample
from robustfusion.registry import FUSIONS


@FUSIONS.register(
    "sum", "project each modality and add the weighted projections of the present ones"
)
class SumFusion(Fusion):
    """``relu(M / n_present * sum_m w_m W_m z_m)``; rescaled so a missing modality keeps the scale.

    On maps ``W_m`` acts at every position (1x1 conv)."""

    supports_maps: ClassVar[bool] = True

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        mask = self.presence(present)
        scale = mask if weights is None else mask * weights
        total = sum(
            channelwise(self.proj[m], features[m]) * per_sample(scale[:, i], features[m])
            for i, m in enumerate(self.modalities)
        )
        rescale = len(self.modalities) / mask.sum(dim=1)
        return (total * per_sample(rescale, total)).relu()
