"""Where prepared datasets live by default: ``$ROBUSTFUSION_DATA/<name>`` or
``~/.cache/robustfusion/<name>``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ROBUSTFUSION_DATA"


def data_home() -> Path:
    """The folder holding every prepared dataset."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustfusion"


def dataset_root(name: str, root: Path | None = None) -> Path:
    """``root`` if given, else the default prepared folder of dataset ``name``."""
    return Path(root).expanduser() if root is not None else data_home() / name
