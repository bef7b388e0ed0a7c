"""robustfusion: multimodal models that stay robust to noisy, corrupted and missing modalities."""

from robustfusion.errors import RobustFusionError
from robustfusion.types import Batch, FusionOutput

__version__ = "0.1.0"

__all__ = ["Batch", "FusionOutput", "RobustFusionError", "__version__"]
