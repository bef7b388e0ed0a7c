"""Per-modality classification heads, shared by the methods that need unimodal predictions."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn


class UnimodalHeads(nn.Module):
    """One linear classifier per modality: ``{m: [B, D_m]} -> {m: [B, C]}``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: head(features[m]) for m, head in self.heads.items()}
