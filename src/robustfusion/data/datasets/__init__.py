"""Registered datasets; every module here registers itself in :data:`robustfusion.registry.DATASETS`."""

from robustfusion._discovery import import_submodules

import_submodules(__name__)
