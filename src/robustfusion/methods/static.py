"""Static fusion: a fixed fusion head and a linear classifier (the bar dynamic methods must clear)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from robustfusion.methods.base import (
    Method,
    MethodFacts,
    MethodSpec,
    output_head,
    uniform_weights,
)
from robustfusion.modules.fusion import build_fusion
from robustfusion.registry import METHODS
from robustfusion.types import FusionOutput


@METHODS.register(
    "static",
    "fixed fusion (concat, sum, attention or gated) and the task's head",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class StaticFusion(Method):
    """``head(fusion({z_m}))`` with uniform weights; on maps (segmentation) the fusion acts at
    every position and the head is the task's segmentation head."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        maps = self.task.feature_kind == "map"
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim, maps=maps)
        self.classifier = output_head(spec, spec.hidden_dim)

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        fused = self.fusion(features, present)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=uniform_weights(present, self.modalities),
            modalities=self.modalities,
        )
