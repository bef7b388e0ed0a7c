"""``load_dataset``: the one entry point from a dataset name or an ``.npz`` file to its splits."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from robustfusion.data.base import DataSplits
from robustfusion.errors import ConfigError
from robustfusion.registry import DATASETS


def load_dataset(
    name: str | None = None,
    *,
    data: Path | str | None = None,
    root: Path | str | None = None,
    seed: int = 0,
    **options: Any,
) -> DataSplits:
    """Load a registered dataset by ``name`` or a generic ``.npz`` file given as ``data``.

    Args:
        name: a name of :data:`robustfusion.registry.DATASETS` (``mfeat``, ``avdigits``, ...).
        data: path of a user ``.npz`` in the generic format (instead of ``name``).
        root: where the dataset's prepared files live (its default cache when ``None``).
        seed: seeds the stratified split where the data does not fix one.
        options: dataset-specific options (e.g. ``views=("fou", "kar")`` for mfeat).
    """
    if data is not None and name not in (None, "npz"):
        raise ConfigError(
            f"both a dataset name ({name!r}) and a data file ({data}) were given: pass only one"
        )
    if data is None and name is None:
        raise ConfigError(
            "no dataset given: pass a dataset name (e.g. mfeat) or a data file (.npz)"
        )
    if data is not None:
        name, options = "npz", {**options, "path": Path(data)}
    assert name is not None
    loader = DATASETS.get(name)
    root_path = Path(root).expanduser() if root is not None else None
    _check_options(name, loader, options)
    return loader(root_path, seed, **options)


def _check_options(name: str, loader: Any, options: dict[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` for an option the loader does not take."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in list(params)[2:]]
    for key in options:
        if key not in accepted:
            choices = ", ".join(accepted) if accepted else "none"
            raise ConfigError(f"dataset {name!r} has no option {key!r}: its options are {choices}")
    from robustfusion.accepts import check_option_values

    given = {k: v for k, v in options.items() if k != "path" or name != "npz"}
    options.update(check_option_values(loader, given, "--dataset-option "))
