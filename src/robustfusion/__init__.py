"""robustfusion: multimodal models that stay robust to noisy, corrupted and missing modalities."""

import os

# OpenMP threads that spin while waiting for work thrash when several processes share the cores
# (two benchmark copies on 2 cores ran 28x slower; benchmarks/bench_threads.py). OpenMP reads this
# when torch loads, which the next import does; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from robustfusion.errors import RobustFusionError  # noqa: E402
from robustfusion.types import Batch, FusionOutput  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Batch", "FusionOutput", "RobustFusionError", "__version__"]
