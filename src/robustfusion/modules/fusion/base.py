"""The fusion-head interface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from robustfusion.errors import DataError
from robustfusion.registry import FUSIONS


def channelwise(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer`` (a ``Linear`` on the feature axis) on vectors ``[B, D]`` or, per position, on
    maps ``[B, D, h, w]`` (the same as a 1x1 convolution with its weights)."""
    if x.dim() == 2:
        return layer(x)
    return layer(x.movedim(1, -1)).movedim(-1, 1)


def per_sample(column: Tensor, like: Tensor) -> Tensor:
    """A ``[B]`` column shaped to broadcast over ``like`` (``[B, D]`` or ``[B, D, h, w]``)."""
    return column.reshape(column.shape[0], *([1] * (like.dim() - 1))).to(like.dtype)


class Fusion(nn.Module):
    """Maps ``{modality: [B, D_m]}`` to a fused ``[B, out_dim]`` vector, or, for heads with
    ``supports_maps``, ``{modality: [B, D_m, h, w]}`` to a fused ``[B, out_dim, h, w]`` map (the same
    parameters, applied at every position: segmentation).

    ``weights`` (``[B, M]``, modality order of ``dims``) scales each modality's contribution per
    sample; ``None`` means 1 for all. An absent modality (``present[m] == False``) contributes
    nothing, and every head can tell it is absent (masking, or presence bits for ``concat``).
    """

    #: Whether the head fuses feature maps position by position (segmentation).
    supports_maps: ClassVar[bool] = False

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
            features[m] * per_sample(mask[:, i], features[m]) for i, m in enumerate(self.modalities)
        ]


def map_fusions() -> list[str]:
    """The registered fusion heads that fuse feature maps."""
    return [e.name for e in FUSIONS if getattr(e.factory, "supports_maps", False)]


def build_fusion(name: str, dims: Mapping[str, int], out_dim: int, maps: bool = False) -> Fusion:
    """Build the fusion head registered as ``name``; ``maps``: it will fuse feature maps
    (refused, in one line, for a head that fuses vectors only)."""
    factory = FUSIONS.get(name)
    if maps and not getattr(factory, "supports_maps", False):
        from robustfusion.errors import ConfigError

        raise ConfigError(
            f"fusion {name!r} fuses vectors only: for feature maps (segmentation) use --fusion "
            f"{' or '.join(map_fusions())}"
        )
    return factory(dims, out_dim)
