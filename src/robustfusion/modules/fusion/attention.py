"""Attention fusion over modality tokens."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.modules.fusion.base import Fusion
from robustfusion.registry import FUSIONS


@FUSIONS.register("attention", "a learned query attends over one token per present modality")
class AttentionFusion(Fusion):
    """Each modality becomes a token ``w_m (W_m z_m + e_m)``; a learned query attends over the
    present tokens (absent ones are masked out of the softmax)."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, num_heads: int = 4) -> None:
        super().__init__(dims, out_dim)
        heads = num_heads if out_dim % num_heads == 0 else 1
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.modality_embedding = nn.Parameter(torch.zeros(len(dims), out_dim))
        self.query = nn.Parameter(torch.randn(1, 1, out_dim) * 0.02)
        self.attention = nn.MultiheadAttention(out_dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(out_dim)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        mask = self.presence(present)
        tokens = torch.stack(
            [
                self.proj[m](features[m]) + self.modality_embedding[i]
                for i, m in enumerate(self.modalities)
            ],
            dim=1,
        )
        if weights is not None:
            tokens = tokens * weights.unsqueeze(-1).to(tokens.dtype)
        query = self.query.expand(tokens.shape[0], -1, -1)
        attended, _ = self.attention(
            query, tokens, tokens, key_padding_mask=mask == 0, need_weights=False
        )
        return torch.relu(self.norm(attended.squeeze(1)))
