"""Concatenation fusion."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion
from robustfusion.registry import FUSIONS


@FUSIONS.register(
    "concat", "concatenate weighted modality features and presence bits, then a linear layer"
)
class ConcatFusion(Fusion):
    """``relu(W [w_1 z_1; ...; w_M z_M; present])``: presence bits let the head tell absence from zeros."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.Linear(sum(dims.values()) + len(dims), out_dim)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        parts = self.scaled(features, present, weights)
        mask = self.presence(present).to(parts[0].dtype)
        return torch.relu(self.proj(torch.cat([*parts, mask], dim=1)))
