"""Preparation steps: from a raw release (or a synthesiser) to the files a dataset loads.

Each module registers its step in :data:`robustfusion.registry.PREPARERS` (``robustfusion prepare
NAME``). Importing this package first imports :mod:`robustfusion.data.datasets`, which imports
every step, so that the registration order does not depend on which module is imported first.
"""

import robustfusion.data.datasets  # noqa: F401  (registers datasets, then every prepare step)
