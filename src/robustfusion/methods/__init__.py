"""Fusion methods, one file each, registered by name in :data:`robustfusion.registry.METHODS`.

Every module in this package is imported on first use of the registry: adding a method is adding
one file that decorates its class with ``@METHODS.register(name, description)``.
"""

from robustfusion._discovery import import_submodules
from robustfusion.methods.base import Method, MethodSpec, build_method
from robustfusion.methods.wrapper import WrapperMethod

import_submodules(__name__)

__all__ = ["Method", "MethodSpec", "WrapperMethod", "build_method"]
