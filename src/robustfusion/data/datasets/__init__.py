"""Dataset definitions; every module here registers its loader in
:data:`robustfusion.registry.DATASETS`.

The registry imports this package to find datasets *and* prepare steps, so the steps of
:mod:`robustfusion.data.prepare` are imported here too (after every dataset module).
:mod:`.packaged_tables` registers its prepare steps itself, beside its datasets (one per spec).
"""

from robustfusion._discovery import import_submodules

import_submodules(__name__)
import_submodules("robustfusion.data.prepare")
