"""Corruptions, one implementation used everywhere (METHODS.md §5): ``gaussian``, ``salt_pepper``,
``blur`` and ``missing``, applied by :func:`corrupt` to all modalities, each one independently
(p = 0.5, the QMF protocol) or one named modality. Every module here registers itself in
:data:`robustfusion.registry.CORRUPTIONS`.
"""

from robustfusion._discovery import import_submodules
from robustfusion.data.corruptions.apply import corrupt
from robustfusion.data.corruptions.base import Corruption
from robustfusion.data.corruptions.noise import add_gaussian_noise

import_submodules(__name__)

__all__ = ["Corruption", "add_gaussian_noise", "corrupt"]
