"""Sum fusion."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion
from robustfusion.registry import FUSIONS


@FUSIONS.register(
    "sum", "project each modality and add the weighted projections of the present ones"
)
class SumFusion(Fusion):
    """``relu(M / n_present * sum_m w_m W_m z_m)``; rescaled so a missing modality keeps the scale."""

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
            self.proj[m](features[m]) * scale[:, i : i + 1] for i, m in enumerate(self.modalities)
        )
        rescale = len(self.modalities) / mask.sum(dim=1, keepdim=True)
        return (total * rescale).relu()
