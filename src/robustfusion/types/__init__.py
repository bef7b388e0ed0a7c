"""The data model: batches in, fused outputs out, everything keyed by modality name."""

from robustfusion.types.batch import Batch
from robustfusion.types.output import FusionOutput

__all__ = ["Batch", "FusionOutput"]
