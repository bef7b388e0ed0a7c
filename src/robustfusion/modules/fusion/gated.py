"""Gated fusion (a gated multimodal unit generalised to M modalities)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion
from robustfusion.registry import FUSIONS


@FUSIONS.register(
    "gated", "softmax gates over modalities computed from all features (gated multimodal unit)"
)
class GatedFusion(Fusion):
    """``h_m = tanh(W_m z_m)``; gates ``g = softmax_m(G [w_1 h_1; ...])`` over present modalities;
    output ``sum_m g_m w_m h_m`` (Arevalo et al., 2017, for M >= 2)."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.gate = nn.Linear(out_dim * len(dims), len(dims))

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        mask = self.presence(present)
        scale = mask if weights is None else mask * weights
        hidden = torch.stack(
            [
                torch.tanh(self.proj[m](features[m])) * scale[:, i : i + 1]
                for i, m in enumerate(self.modalities)
            ],
            dim=1,
        )
        gate_logits = self.gate(hidden.flatten(1)).masked_fill(mask == 0, float("-inf"))
        gates = torch.softmax(gate_logits, dim=1)
        return (gates.unsqueeze(-1) * hidden).sum(dim=1)
