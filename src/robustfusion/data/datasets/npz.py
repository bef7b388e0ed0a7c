"""The generic user format: one ``.npz`` with labels ``y``, an optional ``split`` and modalities.

Format (DESIGN.md): ``y`` integer labels ``[N]``; optional ``split`` ``[N]`` strings
``train|val|test`` (otherwise a seeded 60/20/20 stratified split); optional bool
``present_<modality>`` ``[N]`` marking observed samples (absent entries may hold anything, NaN
included, and are zeroed); every other array is one modality, first axis = samples, in file order.
The kind is inferred from the per-sample rank: 0-D or 1-D -> ``vector`` (standardised per feature
on present training samples), 2-D -> ``map``, 3-D -> ``image`` when the first axis (channels) is 1
or 3, else ``map``. Maps and images are kept as stored.

An image's value range sets its ``intensity_scale`` (one 0-255 intensity unit is ``(hi - lo) / 255``
stored units, so ``gaussian`` severities mean the same on every image): an array
``range_<modality>`` ``[lo, hi]`` in the file, or the option ``value_range`` (``"image:0,16"``,
several joined by ``;``, or a mapping ``{image: [0, 16]}``; the option wins over the file). Without
either, the range is guessed, ``[0, 255]`` when the training maximum exceeds 1 and ``[0, 1]``
otherwise, and the guess is recorded in ``DatasetInfo.extra["notes"]`` (the CLI prints it).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import SPLIT_NAMES, splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS

RESERVED = ("y", "split")
PRESENT_PREFIX = "present_"
RANGE_PREFIX = "range_"


@DATASETS.register(
    "npz", "your own data: an .npz with labels y, optional split, one array per modality"
)
def load(
    root: Path | None,
    seed: int,
    path: Path | None = None,
    value_range: str | Mapping[str, object] | None = None,
) -> DataSplits:
    """Load a generic ``.npz`` file (``root`` is unused; ``path`` is the file).

    Args:
        value_range: value ranges of image modalities, ``"NAME:LO,HI[;NAME:LO,HI]"`` or
            ``{NAME: [LO, HI]}``; overrides the file's ``range_<NAME>`` arrays.
    """
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
    file_ranges = {
        k[len(RANGE_PREFIX) :]: _range_array(k, raw.pop(k), path)
        for k in list(raw)
        if k.startswith(RANGE_PREFIX)
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
    ranges = {**file_ranges, **parse_value_range(value_range)}
    for name in ranges:
        if name not in arrays:
            raise DataError(
                f"{path}: a value range is given for {name!r}, which is no modality: use one of "
                f"{', '.join(arrays)}"
            )
    notes: list[str] = []
    modalities = tuple(
        _modality_info(name, x, split_indices["train"], present[name], ranges.get(name), notes)
        for name, x in arrays.items()
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
            "value_ranges": {m.name: list(r) for m in modalities if (r := ranges.get(m.name))},
            "notes": notes,
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


def parse_value_range(spec: str | Mapping[str, object] | None) -> dict[str, tuple[float, float]]:
    """``"image:0,16;depth:0,1"`` or ``{"image": [0, 16]}`` -> ``{"image": (0.0, 16.0), ...}``."""
    if spec is None:
        return {}
    form = "value_range must look like NAME:LO,HI (e.g. image:0,16; several joined by ';')"
    items: list[tuple[str, object]]
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, str):
        items = []
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            name, sep, bounds = part.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"{form}, got {spec!r}")
            items.append((name.strip(), bounds.split(",")))
    else:
        raise ConfigError(f"{form}, got {spec!r}")
    out: dict[str, tuple[float, float]] = {}
    for name, bounds in items:
        try:
            lo, hi = (float(b) for b in bounds)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ConfigError(f"{form}, got {name}:{bounds}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(
                f"value range of {name!r} must be finite with LO < HI, got {lo}, {hi}"
            )
        out[name] = (lo, hi)
    return out


def _range_array(key: str, value: np.ndarray, path: Path) -> tuple[float, float]:
    bounds = np.asarray(value, dtype=np.float64).ravel() if value.dtype.kind in "biuf" else None
    if (
        bounds is None
        or bounds.size != 2
        or not np.isfinite(bounds).all()
        or bounds[0] >= bounds[1]
    ):
        raise DataError(f"{path}: {key} must hold two finite numbers [lo, hi] with lo < hi")
    return float(bounds[0]), float(bounds[1])


def _modality_info(
    name: str,
    x: np.ndarray,
    train: np.ndarray,
    present: np.ndarray,
    value_range: tuple[float, float] | None,
    notes: list[str],
) -> ModalityInfo:
    shape = tuple(int(s) for s in x.shape[1:])
    is_image = len(shape) == 3 and shape[0] in (1, 3)
    if value_range is not None and not is_image:
        raise DataError(
            f"a value range is given for {name!r}, but only images (C, H, W with 1 or 3 channels) "
            f"take one; {name!r} has per-sample shape {shape}"
        )
    if len(shape) == 1:
        return ModalityInfo(name, shape, "vector")
    if not is_image:
        return ModalityInfo(name, shape, "map")
    rows = train[present[train]]
    if value_range is None:
        peak = float(np.abs(x[rows]).max()) if rows.size else 1.0
        value_range = (0.0, 255.0) if peak > 1.0 else (0.0, 1.0)
        notes.append(
            f"image {name!r}: value range not given; guessed [{value_range[0]:g}, "
            f"{value_range[1]:g}] from its training maximum {peak:g} (noise severities are 0-255 "
            f"units of that range); set range_{name}=[lo, hi] in the file or "
            f"--dataset-option value_range={name}:LO,HI"
        )
    elif rows.size:
        lo, hi = float(x[rows].min()), float(x[rows].max())
        if lo < value_range[0] or hi > value_range[1]:
            notes.append(
                f"image {name!r}: training values span [{lo:g}, {hi:g}], outside the given range "
                f"[{value_range[0]:g}, {value_range[1]:g}]"
            )
    scale = (value_range[1] - value_range[0]) / 255.0
    return ModalityInfo(name, shape, "image", intensity_scale=scale)
