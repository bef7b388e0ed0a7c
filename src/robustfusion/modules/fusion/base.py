"""The fusion-head interface."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.errors import DataError
from robustfusion.registry import FUSIONS


class Fusion(nn.Module):
    """Maps ``{modality: [B, D_m]}`` to a fused ``[B, out_dim]`` vector.

    ``weights`` (``[B, M]``, modality order of ``dims``) scales each modality's contribution per
    sample; ``None`` means 1 for all. An absent modality (``present[m] == False``) contributes
    nothing, and every head can tell it is absent (masking, or presence bits for ``concat``).
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__()
        if len(dims) < 1:
            raise ValueError("a fusion head needs at least one modality")
        self.modalities: tuple[str, ...] = tuple(dims)
        self.dims = dict(dims)
        self.out_dim = out_dim

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        weights: Tensor | None = None,
    ) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def presence(self, present: Mapping[str, Tensor]) -> Tensor:
        """``FloatTensor[B, M]`` with 1 where a modality is present; rejects all-missing samples."""
        mask = torch.stack([present[m] for m in self.modalities], dim=1)
        if not bool(mask.any(dim=1).all()):
            raise DataError(
                "a sample has every modality missing: drop such samples or keep at least one modality"
            )
        return mask.to(torch.get_default_dtype())

    def scaled(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], weights: Tensor | None
    ) -> list[Tensor]:
        """Features multiplied by their weight and zeroed where absent, in modality order."""
        mask = self.presence(present)
        if weights is not None:
            mask = mask * weights
        return [
            features[m] * mask[:, i : i + 1].to(features[m].dtype)
            for i, m in enumerate(self.modalities)
        ]


def build_fusion(name: str, dims: Mapping[str, int], out_dim: int) -> Fusion:
    """Build the fusion head registered as ``name``."""
    return FUSIONS.get(name)(dims, out_dim)
