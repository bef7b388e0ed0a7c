"""Encoders: MLP for vectors, a small CNN for 2-D maps, ResNet-18 (1 or 3 channels), all written here.

Registered in :data:`robustfusion.registry.ENCODERS`; :func:`build_encoder` picks one by the rank
of the input unless a name is given.
"""

from robustfusion._discovery import import_submodules
from robustfusion.encoders.base import build_encoder, default_encoder_name

import_submodules(__name__)

__all__ = ["build_encoder", "default_encoder_name"]
