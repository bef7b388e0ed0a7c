"""Concatenation fusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion, channelwise
from robustfusion.registry import FUSIONS


@FUSIONS.register(
    "concat", "concatenate weighted modality features and presence bits, then a linear layer"
)
class ConcatFusion(Fusion):
    """``relu(W [w_1 z_1; ...; w_M z_M; present])``: presence bits let the head tell absence from zeros.

    On maps the presence bits are constant planes and ``W`` acts at every position (1x1 conv)."""

    supports_maps: ClassVar[bool] = True

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
        if parts[0].dim() == 4:
            mask = mask[:, :, None, None].expand(-1, -1, *parts[0].shape[-2:])
        return torch.relu(channelwise(self.proj, torch.cat([*parts, mask], dim=1)))
