"""The generic user format: one ``.npz`` with labels ``y``, an optional ``split`` and modalities.

Format (DESIGN.md): ``y`` integer labels ``[N]``; optional ``split`` ``[N]`` strings
``train|val|test`` (otherwise a seeded 60/20/20 stratified split); optional bool
``present_<modality>`` ``[N]`` marking observed samples (absent entries may hold anything, NaN
included, and are zeroed); every other array is one modality, first axis = samples, in file order.
The kind is inferred from the per-sample rank: 0-D or 1-D -> ``vector`` (standardised per feature
on present training samples), 2-D -> ``map``, 3-D -> ``image`` when the first axis (channels) is 1
or 3, else ``map``. Maps and images are kept as stored; an image's ``intensity_scale`` assumes
0-255 pixel values when its training maximum exceeds 1 and [0, 1] values otherwise.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import SPLIT_NAMES, splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS

RESERVED = ("y", "split")
PRESENT_PREFIX = "present_"


@DATASETS.register(
    "npz", "your own data: an .npz with labels y, optional split, one array per modality"
)
def load(root: Path | None, seed: int, path: Path | None = None) -> DataSplits:
    """Load a generic ``.npz`` file (``root`` is unused; ``path`` is the file)."""
    if path is None:
        raise DataError("the npz dataset needs a file: pass --data FILE.npz (or data=FILE.npz)")
    path = Path(path).expanduser()
    raw = _read(path)
    if "y" not in raw:
        raise DataError(f"{path} has no array 'y': save the integer class labels as y=...")
    y = raw.pop("y")
    labels, class_names = _labels(y, path)
    n = int(labels.shape[0])
    split_array = raw.pop("split", None)
    presence = {
        k[len(PRESENT_PREFIX) :]: raw.pop(k) for k in list(raw) if k.startswith(PRESENT_PREFIX)
    }
    if not raw:
        raise DataError(f"{path} holds no modality arrays besides y: add one array per modality")
    for name in presence:
        if name not in raw:
            raise DataError(
                f"{path}: present_{name} names no modality array {name!r}: rename it or add the array"
            )
    arrays = {name: _modality(name, x, n, path) for name, x in raw.items()}
    present = {name: _presence(name, presence.get(name), n, path) for name in arrays}
    _check_finite(arrays, present, path)
    every = np.stack(list(present.values()), axis=1)
    empty = np.flatnonzero(~every.any(axis=1))
    if empty.size:
        raise DataError(
            f"{path}: sample {int(empty[0])} has every modality missing ({empty.size} such samples): "
            "drop them or mark at least one modality present"
        )
    split_indices = _split(split_array, labels, n, seed, path)
    modalities = tuple(
        _modality_info(name, x, split_indices["train"], present[name]) for name, x in arrays.items()
    )
    info = DatasetInfo(
        name=path.stem,
        modalities=modalities,
        num_classes=len(class_names),
        class_names=class_names,
        description=f"user data from {path.name}",
        extra={
            "source": str(path),
            "split": "file" if split_array is not None else f"stratified seed {seed}",
        },
    )
    return splits_from_arrays(arrays, labels, split_indices, info, present=present)


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: check the path given to --data")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            out: dict[str, np.ndarray] = {}
            for name in names:
                try:
                    out[name] = archive[name]
                except ValueError as err:
                    raise DataError(
                        f"{path}: array {name!r} holds Python objects (pickled), which are not "
                        "loaded for safety: save numeric arrays (and split as fixed-width strings)"
                    ) from err
            return out
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(
            f"{path} is not a readable .npz file ({err}): save it with numpy.savez"
        ) from err
    except ValueError as err:
        raise DataError(
            f"{path} is not a readable .npz file ({err}): save it with numpy.savez"
        ) from err


def _labels(y: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    if y.ndim != 1:
        raise DataError(f"{path}: y must be 1-D (one label per sample), got shape {y.shape}")
    if y.shape[0] == 0:
        raise DataError(f"{path}: y is empty: the file needs at least one sample")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise DataError(f"{path}: y holds non-integer values: store integer class labels")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iub":
        raise DataError(f"{path}: y has dtype {y.dtype}; store integer class labels")
    values, labels = np.unique(y.astype(np.int64), return_inverse=True)
    if values.size < 2:
        raise DataError(
            f"{path}: y has a single class ({values[0]}): classification needs two or more"
        )
    return labels.astype(np.int64), tuple(str(v) for v in values)


def _modality(name: str, x: np.ndarray, n: int, path: Path) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: modality {name!r} has dtype {x.dtype}; store numbers (float32)")
    if x.ndim == 0 or x.shape[0] != n:
        got = "a scalar" if x.ndim == 0 else f"{x.shape[0]} samples (shape {x.shape})"
        raise DataError(
            f"{path}: modality {name!r} has {got} but y has {n}: the first axis must be the samples"
        )
    if x.ndim > 4:
        raise DataError(
            f"{path}: modality {name!r} has {x.ndim - 1} axes per sample; at most 3 (C, H, W) are supported"
        )
    x = x.astype(np.float32)
    return x.reshape(n, 1) if x.ndim == 1 else x


def _presence(name: str, p: np.ndarray | None, n: int, path: Path) -> np.ndarray:
    if p is None:
        return np.ones(n, dtype=bool)
    if p.shape != (n,):
        raise DataError(f"{path}: present_{name} must have shape ({n},), got {p.shape}")
    if p.dtype != np.bool_:
        if p.dtype.kind not in "iu" or not np.isin(p, (0, 1)).all():
            raise DataError(f"{path}: present_{name} must be boolean (True = observed)")
        p = p.astype(bool)
    return p


def _check_finite(
    arrays: dict[str, np.ndarray], present: dict[str, np.ndarray], path: Path
) -> None:
    for name, x in arrays.items():
        finite = np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
        bad = np.flatnonzero(~finite & present[name])
        if bad.size:
            raise DataError(
                f"{path}: modality {name!r} has NaN or Inf in sample {int(bad[0])} ({bad.size} samples): "
                f"clean or impute them, or mark them absent with present_{name}"
            )


def _split(
    split: np.ndarray | None, labels: np.ndarray, n: int, seed: int, path: Path
) -> dict[str, np.ndarray]:
    if split is None:
        indices = stratified_split(labels, seed)
    else:
        if split.dtype.kind not in "US" or split.shape != (n,):
            raise DataError(
                f"{path}: split must be {n} strings train|val|test, got dtype {split.dtype} shape {split.shape}"
            )
        values = np.char.strip(split.astype(str))
        unknown = sorted(set(np.unique(values)) - set(SPLIT_NAMES))
        if unknown:
            raise DataError(f"{path}: split holds {unknown[0]!r}; use only train, val and test")
        indices = {name: np.flatnonzero(values == name) for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        if indices[name].size == 0:
            raise DataError(
                f"{path}: the {name} split is empty: give it samples in split, or add samples"
            )
    return indices


def _modality_info(
    name: str, x: np.ndarray, train: np.ndarray, present: np.ndarray
) -> ModalityInfo:
    shape = tuple(int(s) for s in x.shape[1:])
    if len(shape) == 1:
        return ModalityInfo(name, shape, "vector")
    if len(shape) == 3 and shape[0] in (1, 3):
        rows = train[present[train]]
        peak = float(np.abs(x[rows]).max()) if rows.size else 1.0
        return ModalityInfo(
            name, shape, "image", intensity_scale=1.0 if peak > 1.0 else 1.0 / 255.0
        )
    return ModalityInfo(name, shape, "map")
