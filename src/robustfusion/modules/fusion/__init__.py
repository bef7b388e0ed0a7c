"""Fusion heads: each maps per-modality features to one fused vector, honouring per-sample
modality weights and presence masks. Registered by name in :data:`robustfusion.registry.FUSIONS`."""

from robustfusion.modules.fusion.attention import AttentionFusion
from robustfusion.modules.fusion.base import Fusion, build_fusion
from robustfusion.modules.fusion.concat import ConcatFusion
from robustfusion.modules.fusion.gated import GatedFusion
from robustfusion.modules.fusion.sum import SumFusion

__all__ = ["AttentionFusion", "ConcatFusion", "Fusion", "GatedFusion", "SumFusion", "build_fusion"]
