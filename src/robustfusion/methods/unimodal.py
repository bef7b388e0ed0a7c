"""Unimodal baseline: one named modality, the others ignored."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec
from robustfusion.registry import METHODS
from robustfusion.types import FusionOutput


@METHODS.register(
    "unimodal", "a classifier on one modality (option modality=NAME, default the first)"
)
class Unimodal(Method):
    def __init__(self, spec: MethodSpec, modality: str | None = None) -> None:
        super().__init__(spec)
        self.modality = modality or spec.modalities[0]
        if self.modality not in spec.modalities:
            raise ConfigError(
                f"unimodal: unknown modality {self.modality!r}; choose one of {', '.join(spec.modalities)}"
            )
        self.classifier = nn.Sequential(
            nn.Linear(spec.feature_dims[self.modality], spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.num_classes),
        )

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        feature = features[self.modality]
        logits = self.classifier(feature)
        # A missing modality leaves nothing to predict from: the prediction falls back to uniform.
        seen = present[self.modality].unsqueeze(1)
        logits = torch.where(seen, logits, torch.zeros_like(logits))
        weights = torch.zeros(feature.shape[0], len(self.modalities), device=feature.device)
        weights[:, self.modalities.index(self.modality)] = seen.squeeze(1).to(weights.dtype)
        return FusionOutput(
            logits=logits,
            weights=weights,
            modalities=self.modalities,
            unimodal_logits={self.modality: logits},
        )
