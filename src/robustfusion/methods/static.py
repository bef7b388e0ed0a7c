"""Static fusion: a fixed fusion head and a linear classifier (the bar dynamic methods must clear)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from robustfusion.methods.base import Method, MethodSpec, uniform_weights
from robustfusion.modules.fusion import build_fusion
from robustfusion.registry import METHODS
from robustfusion.types import FusionOutput


@METHODS.register(
    "static", "fixed fusion (concat, sum, attention or gated) and a linear classifier"
)
class StaticFusion(Method):
    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        fused = self.fusion(features, present)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=uniform_weights(present, self.modalities),
            modalities=self.modalities,
        )
