"""The authors' UDML (and OGM-GE) classifier: one linear layer over the concatenated features.

[code] ``models/fusion_modules.py`` ``ConcatFusion_AUXI``: ``out = W [x; y] + b`` and the
unimodal outputs ``W [x; 0] + b``, ``W [0; y] + b`` of the same layer. With UDML's residual
weights ``x = (1 + w_a) a`` the weight ``w`` scales one modality's share of the logits. Absent
modalities enter as zeros (the authors' way of removing one); generalised to ``M`` modalities.
OGM-GE's ``ConcatFusion`` is the same layer; its per-modality outputs slice ``W`` and add half
the bias [code], from :meth:`ConcatLinearHead.contributions`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConcatLinearHead(nn.Module):
    """``logits = W [s_1 z_1; ...; s_M z_M] + b`` with ``s`` the per-sample weights ``[B, M]``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        if len(dims) < 1:
            raise ValueError("a linear head needs at least one modality")
        self.modalities: tuple[str, ...] = tuple(dims)
        self.dims = dict(dims)
        self.linear = nn.Linear(sum(self.dims.values()), num_classes)
        owner = torch.cat(
            [torch.full((d,), j, dtype=torch.long) for j, d in enumerate(self.dims.values())]
        )
        #: ``[M, sum D]``: 1 on the columns of modality ``j`` (its block of ``W``).
        self.register_buffer(
            "blocks",
            (owner.unsqueeze(0) == torch.arange(len(dims)).unsqueeze(1)).float(),
            persistent=False,
        )

    def _inputs(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], weights: Tensor | None
    ) -> Tensor:
        mask = torch.stack([present[m] for m in self.modalities], dim=1)
        scale = mask.to(weights.dtype if weights is not None else torch.get_default_dtype())
        if weights is not None:
            scale = scale * weights
        # One column scale per feature: the weight of the modality that owns it.
        columns = scale.to(self.blocks.dtype) @ self.blocks
        joined = torch.cat([features[m] for m in self.modalities], dim=1)
        return joined * columns.to(joined.dtype)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        """``[B, C]`` logits of the present modalities (absent ones zeroed)."""
        return self.linear(self._inputs(features, present, weights))

    def with_solo(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(fused [B, C], solo [M, B, C])``: ``solo[j] = W [0; ..; s_j z_j; ..; 0] + b``
        (the authors' unimodal outputs) and ``fused = sum_j W_j s_j z_j + b``, from the
        per-modality contributions ``W_j s_j z_j`` (one batched product when the sizes agree)."""
        contributions = self._contributions(self._inputs(features, present, weights))
        return contributions.sum(dim=0) + self.linear.bias, contributions + self.linear.bias

    def contributions(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:
        """``[M, B, C]``: ``W_j s_j z_j``, modality ``j``'s share of the logits without the bias
        (zero where ``j`` is absent); the fused logits are their sum plus the bias."""
        return self._contributions(self._inputs(features, present, weights))

    def _contributions(self, joined: Tensor) -> Tensor:
        weight = self.linear.weight
        sizes = list(self.dims.values())
        if len(set(sizes)) == 1:
            count, size = len(sizes), sizes[0]
            parts = joined.view(joined.shape[0], count, size)
            contributions = torch.einsum("bmd,cmd->mbc", parts, weight.view(-1, count, size))
        else:
            contributions = torch.stack(
                [
                    F.linear(part, block)
                    for part, block in zip(
                        joined.split(sizes, dim=1), weight.split(sizes, dim=1), strict=True
                    )
                ]
            )
        return contributions
