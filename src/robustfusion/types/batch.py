"""The batch every component consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


@dataclass
class Batch:
    """A batch of multimodal samples.

    Attributes:
        inputs: modality name -> tensor ``[B, ...]``. Absent entries hold zeros but are never read
            as data: ``present`` says what was observed.
        present: modality name -> ``BoolTensor[B]``, ``False`` where the modality is missing.
        target: ``LongTensor[B]`` class labels.
        index: ``LongTensor[B]`` sample indices within their split (seeds per-sample randomness).
        noise_level: optional modality name -> ``FloatTensor[B]`` of injected noise levels
            (UDML's ``v``); empty when no noise was injected.
    """

    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    target: Tensor
    index: Tensor
    noise_level: dict[str, Tensor] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def batch_size(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={k: v.to(device) for k, v in self.inputs.items()},
            present={k: v.to(device) for k, v in self.present.items()},
            target=self.target.to(device),
            index=self.index.to(device),
            noise_level={k: v.to(device) for k, v in self.noise_level.items()},
        )

    def replace(self, **changes: object) -> Batch:
        """A shallow copy with some fields replaced (batches are treated as immutable)."""
        return replace(self, **changes)

    def present_matrix(self) -> Tensor:
        """``BoolTensor[B, M]`` of presence, modalities in ``self.modalities`` order."""
        return torch.stack([self.present[m] for m in self.modalities], dim=1)
