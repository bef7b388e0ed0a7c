"""Unimodal baseline: one named modality, the others ignored."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodFacts, MethodSpec, output_head
from robustfusion.modules.fusion.base import per_sample
from robustfusion.registry import METHODS
from robustfusion.types import FusionOutput


@METHODS.register(
    "unimodal",
    "the task's head on one modality (option modality=NAME, default the first)",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class Unimodal(Method):
    """``head(relu(W z_m))`` on one modality; on maps (segmentation) ``W`` is a 1x1 convolution
    and the head the task's segmentation head."""

    def __init__(self, spec: MethodSpec, modality: str | None = None) -> None:
        super().__init__(spec)
        self.modality = modality or spec.modalities[0]
        if self.modality not in spec.modalities:
            raise ConfigError(
                f"unimodal: unknown modality {self.modality!r}; choose one of {', '.join(spec.modalities)}"
            )
        dim = spec.feature_dims[self.modality]
        maps = self.task.feature_kind == "map"
        self.classifier = nn.Sequential(
            nn.Conv2d(dim, spec.hidden_dim, 1) if maps else nn.Linear(dim, spec.hidden_dim),
            nn.ReLU(),
            output_head(spec, spec.hidden_dim),
        )

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        feature = features[self.modality]
        logits = self.classifier(feature)
        # A missing modality leaves nothing to predict from: the prediction falls back to uniform.
        seen = present[self.modality]
        logits = torch.where(per_sample(seen, logits).bool(), logits, torch.zeros_like(logits))
        weights = torch.zeros(feature.shape[0], len(self.modalities), device=feature.device)
        weights[:, self.modalities.index(self.modality)] = seen.to(weights.dtype)
        return FusionOutput(
            logits=logits,
            weights=weights,
            modalities=self.modalities,
            unimodal_logits={self.modality: logits},
        )
