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
        target: the task's targets: ``LongTensor[B]`` class labels (classification),
            ``LongTensor[B, H, W]`` label maps (segmentation).
        index: ``LongTensor[B]`` sample indices within their split (seeds per-sample randomness).
        noise_level: optional modality name -> ``FloatTensor[B]`` of injected noise levels
            (UDML's ``v``); empty when no noise was injected.
        corrupted: optional modality name -> ``BoolTensor[B]``, ``True`` where an evaluation
            corruption changed that modality of that sample (set by
            :func:`robustfusion.data.corruptions.corrupt`); the oracle weights of
            ``evaluate --weights oracle`` read it. Empty for clean data.
    """

    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    target: Tensor
    index: Tensor
    noise_level: dict[str, Tensor] = field(default_factory=dict)
    corrupted: dict[str, Tensor] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def batch_size(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(value: Tensor) -> Tensor:
            return value.to(device, non_blocking=non_blocking)

        return Batch(
            inputs={k: move(v) for k, v in self.inputs.items()},
            present={k: move(v) for k, v in self.present.items()},
            target=move(self.target),
            index=move(self.index),
            noise_level={k: move(v) for k, v in self.noise_level.items()},
            corrupted={k: move(v) for k, v in self.corrupted.items()},
        )

    def replace(self, **changes: object) -> Batch:
        """A shallow copy with some fields replaced (batches are treated as immutable)."""
        return replace(self, **changes)

    def present_matrix(self) -> Tensor:
        """``BoolTensor[B, M]`` of presence, modalities in ``self.modalities`` order."""
        return torch.stack([self.present[m] for m in self.modalities], dim=1)

    def corrupted_matrix(self, modalities: tuple[str, ...] | None = None) -> Tensor:
        """``BoolTensor[B, M]``: which modality of which sample a corruption changed (all
        ``False`` where :attr:`corrupted` has no entry), in ``modalities`` order."""
        names = self.modalities if modalities is None else modalities
        none = torch.zeros(self.batch_size, dtype=torch.bool, device=self.target.device)
        return torch.stack([self.corrupted.get(m, none).bool() for m in names], dim=1)
