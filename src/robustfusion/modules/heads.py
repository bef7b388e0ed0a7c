"""Per-modality classification heads, shared by the methods that need unimodal predictions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


class UnimodalHeads(nn.Module):
    """One linear classifier per modality: ``{m: [B, D_m]} -> {m: [B, C]}``."""

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: head(features[m]) for m, head in self.heads.items()}


class StackedUnimodalHeads(nn.Module):
    """The linear heads of :class:`UnimodalHeads`, stored and run batched across modalities [ours].

    Modalities with the same feature size share one parameter ``[G, C, D + 1]`` (each head's
    weight ``[C, D]`` with its bias as the last column) and run as one batched matrix product, so
    ``M`` heads cost one forward, one backward and one optimiser parameter instead of ``M`` of each
    (on small models the per-operator overhead, not the arithmetic, is the cost). Each head is
    initialised as ``nn.Linear`` would be (same random draws in the same order) and computes exactly
    ``x_m W_m^T + b_m``.

    ``forward`` returns the logits stacked ``[M, B, C]`` in the order of ``dims``. A state dict
    saved by :class:`UnimodalHeads` (keys ``heads.<m>.weight/bias``) loads into it.
    """

    def __init__(self, dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = tuple(dims)
        self.num_classes = num_classes
        groups: dict[int, list[str]] = {}
        for m, d in dims.items():
            groups.setdefault(int(d), []).append(m)
        #: ``(feature size, modalities)`` per parameter group, in first-appearance order.
        self.groups: tuple[tuple[int, tuple[str, ...]], ...] = tuple(
            (d, tuple(ms)) for d, ms in groups.items()
        )
        self.weights = nn.ParameterList()
        for d, members in self.groups:
            weight = torch.empty(len(members), num_classes, d + 1)
            for i in range(len(members)):  # nn.Linear's initialisation, head by head
                nn.init.kaiming_uniform_(weight[i, :, :d], a=math.sqrt(5))
                bound = 1.0 / math.sqrt(d) if d > 0 else 0.0
                nn.init.uniform_(weight[i, :, d], -bound, bound)
            self.weights.append(nn.Parameter(weight))
        order = [m for _, members in self.groups for m in members]
        #: Positions of ``dims``'s modalities in the group-major output (identity for one group).
        self._order = [order.index(m) for m in self.modalities]
        self._identity = self._order == list(range(len(order)))

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        """``{m: [B, D_m]}`` -> logits ``[M, B, C]`` (modality order of ``dims``)."""
        outputs = []
        for (d, members), weight in zip(self.groups, self.weights, strict=True):
            x = torch.stack([features[m] for m in members])  # [G, B, D]
            bias = weight[:, :, d].unsqueeze(1)  # [G, 1, C]
            outputs.append(torch.baddbmm(bias, x, weight[:, :, :d].transpose(1, 2)))
        stacked = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return stacked if self._identity else stacked[self._order]

    def head(self, modality: str) -> tuple[Tensor, Tensor]:
        """``(weight [C, D], bias [C])`` of one modality's head (views of the stacked tensors)."""
        for (d, members), weight in zip(self.groups, self.weights, strict=True):
            if modality in members:
                i = members.index(modality)
                return weight[i, :, :d], weight[i, :, d]
        raise KeyError(modality)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        old = [f"{prefix}heads.{m}.{kind}" for m in self.modalities for kind in ("weight", "bias")]
        if all(key in state_dict for key in old):  # saved by UnimodalHeads: stack its tensors
            for g, (_, members) in enumerate(self.groups):
                state_dict[f"{prefix}weights.{g}"] = torch.stack(
                    [
                        torch.cat(
                            [
                                state_dict.pop(f"{prefix}heads.{m}.weight"),
                                state_dict.pop(f"{prefix}heads.{m}.bias").unsqueeze(1),
                            ],
                            dim=1,
                        )
                        for m in members
                    ]
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
