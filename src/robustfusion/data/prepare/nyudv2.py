"""``robustfusion prepare nyudv2``: the official labelled NYU Depth v2 release -> QMF's layout
(:mod:`robustfusion.data.datasets.nyudv2`).

Raw input: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py, an optional
dependency) and ``splits.mat`` (``trainNdxs`` 795, ``testNdxs`` 654, 1-based). Depth is written in
metres scaled to 0-255 over ``max_depth`` (10 m), replicated to 3 channels (QMF uses HHA).
Resumable (existing images are kept) and atomic (each image is renamed into place; a marker file
flags an unfinished folder).

``--task segmentation`` (default ``task=scene``, the above) writes the 40-class semantic
segmentation arrays of :func:`robustfusion.data.datasets.nyudv2_segmentation.load_segmentation` instead, to
the ``nyudv2_segmentation`` cache folder: per split (795 train / 654 test, the shipped standard
split) ``{split}_index.npy`` (int32 1-based image numbers), ``{split}_rgb.npy`` (uint8
``[N, 3, 480, 640]``), ``{split}_depth.npy`` (float16 metres ``[N, 480, 640]``, the in-painted
``depths`` or, with ``depth=raw``, ``rawDepths`` with 0 where the sensor gave none; float16 keeps
0.05 % of the value, under 5 mm at 10 m) and ``{split}_labels.npy`` (uint8, void -> 255, raw
ids 1..894 -> 0..39 by Gupta et al.'s mapping). ``splits.mat`` and ``classMapping40.mat`` are
optional in ``--raw``: the shipped copies are used, and a user's files are checked against them.
Each array is filled in a temporary ``.npy`` and renamed into place; a rerun keeps the arrays
that exist; ``params.json`` refuses a rerun with another ``depth`` into the same folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from robustfusion.atomic import (
    atomic_path,
    remove_stale_temporaries,
    save_image,
    save_npy,
    write_json,
)
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.nyudv2 import (
    CLASSES,
    LABELED_FILE,
    NAME,
    SPLITS_FILE,
    UNFINISHED,
    scene_class,
)
from robustfusion.data.datasets.nyudv2_segmentation import (
    DEPTH_KINDS,
    MAPPING_FILE,
    NUM_IMAGES,
    NUM_RAW_CLASSES,
    SEGMENTATION_NAME,
    label_lookup,
    segmentation_classes,
    segmentation_command,
    shipped_class_mapping,
    shipped_split,
)
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import PREPARERS
from robustfusion.tasks import IGNORE_INDEX


def depth_to_image(depth: np.ndarray, max_depth: float) -> Image.Image:
    """Depth in metres ``[H, W]`` -> 8-bit 3-channel image (0 m -> 0, ``max_depth`` -> 255)."""
    scaled = np.clip(np.nan_to_num(depth, nan=0.0) / max_depth, 0.0, 1.0) * 255.0
    gray = np.round(scaled).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))


def _read_split_indices(path: Path, command: str) -> dict[str, list[int]]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        return {
            "train": [int(i) for i in np.asarray(mat["trainNdxs"]).ravel()],
            "test": [int(i) for i in np.asarray(mat["testNdxs"]).ravel()],
        }
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: put the official splits.mat beside {LABELED_FILE}"
        ) from None
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not the official NYU splits.mat ({exc}): {command}") from None


def _scene_types(handle: object, dataset: object) -> list[str]:
    """Decode MATLAB's cell array of strings (HDF5 object references to uint16 arrays)."""
    names = []
    for ref in np.asarray(dataset[()]).ravel():  # type: ignore[index]
        chars = np.asarray(handle[ref][()]).ravel()  # type: ignore[index]
        names.append("".join(chr(int(c)) for c in chars))
    return names


@PREPARERS.register(
    NAME,
    "NYU Depth v2 labelled .mat + splits.mat -> QMF's paired RGB|depth folders "
    "(task=segmentation: 40-class label maps, see nyudv2_segmentation)",
)
def prepare(
    raw: Path | None,
    out: Path | None,
    max_depth: float = 10.0,
    verbose: bool = True,
    task: str = "scene",
    depth: str = "inpainted",
) -> Path:
    """Write QMF's layout from the official labelled release in ``raw`` (resumable, atomic);
    ``task="segmentation"`` writes the 40-class arrays instead (:func:`prepare_segmentation`)."""
    if task == "segmentation":
        if max_depth != 10.0:
            raise ConfigError("max_depth applies to task=scene only: drop it for segmentation")
        return prepare_segmentation(raw, out, depth=depth, verbose=verbose)
    if task != "scene":
        raise ConfigError(f"task accepts scene or segmentation, got {task!r}")
    if depth != "inpainted":
        raise ConfigError("depth applies to task=segmentation only: add --task segmentation")
    out = dataset_root(NAME, out)
    command = f"run `robustfusion prepare {NAME} --raw RAW --out {out}`"
    if raw is None:
        raise DataError(
            f"{NAME} needs the folder holding {LABELED_FILE} and {SPLITS_FILE}: {command}"
        )
    raw = Path(raw).expanduser()
    labeled = raw / LABELED_FILE
    if not labeled.is_file():
        raise DataError(
            f"{labeled} is missing: download the labelled NYU Depth v2 release, then {command}"
        )
    if max_depth <= 0:
        raise ConfigError(f"max_depth must be positive, got {max_depth}")
    try:
        import h5py
    except ImportError:
        raise ConfigError(
            f"reading {LABELED_FILE} (MATLAB v7.3) needs h5py: pip install h5py"
        ) from None
    splits = _read_split_indices(raw / SPLITS_FILE, command)
    marker = out / UNFINISHED
    out.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"raw": str(raw)})
    counts: dict[str, dict[str, int]] = {}
    try:
        with h5py.File(labeled, "r") as handle:
            images, depths = handle["images"], handle["depths"]
            scenes = _scene_types(handle, handle["sceneTypes"])
            total = int(images.shape[0])
            for split, indices in splits.items():
                counts[split] = dict.fromkeys(CLASSES, 0)
                for number in indices:
                    if not 1 <= number <= total:
                        raise DataError(
                            f"{raw / SPLITS_FILE} names image {number} but {labeled} has {total}"
                        )
                    label = scene_class(scenes[number - 1])
                    counts[split][label] += 1
                    target = out / split / label / f"{number:04d}.png"
                    if target.is_file():
                        continue
                    rgb = np.asarray(images[number - 1]).transpose(2, 1, 0)
                    depth = np.asarray(depths[number - 1], dtype=np.float32).transpose(1, 0)
                    h, w = rgb.shape[:2]
                    both = Image.new("RGB", (2 * w, h))
                    both.paste(Image.fromarray(np.ascontiguousarray(rgb)), (0, 0))
                    both.paste(depth_to_image(depth, max_depth), (w, 0))
                    save_image(target, both)
    except (OSError, KeyError) as exc:
        raise DataError(
            f"{labeled} is not the official labelled NYU Depth v2 file ({exc})"
        ) from None
    write_json(
        out / "meta.json",
        {"dataset": NAME, "classes": list(CLASSES), "counts": counts, "max_depth": max_depth},
    )
    marker.unlink()
    if verbose:
        for split, per_class in counts.items():
            print(f"{NAME} {split}: {sum(per_class.values())} RGB-D pairs", file=sys.stderr)
    return out


# ------------------------------------------------------------------ 40-class segmentation
_META_PAGE = "github.com/ankurhanda/nyuv2-meta-data"


def _checked_split(path: Path, command: str) -> dict[str, tuple[int, ...]]:
    """The shipped standard split; a user's ``splits.mat``, when present, must agree with it."""
    shipped = shipped_split()
    if not path.is_file():
        return shipped
    given = _read_split_indices(path, command)
    if any(sorted(given[s]) != sorted(shipped[s]) for s in shipped):
        raise DataError(
            f"{path} differs from the standard 795/654 split shipped with robustfusion "
            "(data/splits/nyudv2): remove it to use the shipped split"
        )
    return shipped


def _checked_mapping(path: Path) -> np.ndarray:
    """The shipped 894 -> 40 mapping; a user's ``classMapping40.mat``, when present, must agree."""
    shipped = shipped_class_mapping()
    if not path.is_file():
        return shipped
    from scipy.io import loadmat

    try:
        given = np.asarray(loadmat(str(path))["mapClass"]).ravel()
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(
            f"{path} is not Gupta et al.'s {MAPPING_FILE} ({exc}): get it from {_META_PAGE} "
            "or remove it to use the shipped mapping"
        ) from None
    if given.shape != shipped.shape or not np.array_equal(given.astype(np.int64), shipped):
        raise DataError(
            f"{path} differs from the 894 -> 40 class mapping shipped with robustfusion "
            f"(data/splits/nyudv2, from {_META_PAGE}): remove it to use the shipped mapping"
        )
    return shipped


def _check_settings(out: Path, params: dict[str, Any]) -> None:
    """Refuse to write into a folder prepared with other settings or for another dataset."""
    recorded = out / "params.json"
    if recorded.is_file():
        try:
            old = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{recorded} is not readable ({exc}): delete {out} and rerun") from None
        if old != params:
            changed = ", ".join(
                f"{k}={old.get(k)!r} (now {v!r})" for k, v in params.items() if old.get(k) != v
            )
            raise ConfigError(
                f"{out} was prepared with {changed}: give a new --out or delete {out}"
            )
    elif (out / "meta.json").is_file() or (out / "train").is_dir():
        raise ConfigError(
            f"{out} holds another prepared dataset: give an empty or new --out for {SEGMENTATION_NAME}"
        )


def _sources(handle: Any, labeled: Path, depth: str) -> dict[str, Any]:
    """The h5py datasets to read, checked for the release's layout (MATLAB order: N, C, W, H)."""
    images = handle["images"]
    depths = handle["rawDepths" if depth == "raw" else "depths"]
    labels = handle["labels"]
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(
            f"{labeled}: images has shape {images.shape}, not the release's "
            f"[{NUM_IMAGES}, 3, 640, 480]: download {LABELED_FILE} again"
        )
    n, _, width, height = images.shape
    for name, dataset in (
        ("depths" if depth != "raw" else "rawDepths", depths),
        ("labels", labels),
    ):
        if tuple(dataset.shape) != (n, width, height):
            raise DataError(
                f"{labeled}: {name} has shape {dataset.shape}, images {images.shape}: "
                f"download {LABELED_FILE} again"
            )
    if n != NUM_IMAGES:
        raise DataError(
            f"{labeled} holds {n} images, the labelled release {NUM_IMAGES}: "
            f"download {LABELED_FILE} again"
        )
    return {"rgb": images, "depth": depths, "labels": labels}


def _image(kind: str, source: Any, number: int, lookup: np.ndarray, where: str) -> np.ndarray:
    """Image ``number`` (1-based) of ``source`` in row-major ``[.., H, W]`` as it is stored."""
    array = np.asarray(source[number - 1])
    if kind == "rgb":
        return array.transpose(0, 2, 1)
    if kind == "depth":
        metres = array.astype(np.float32).T
        if not np.isfinite(metres).all() or (metres < 0).any():
            raise DataError(f"{where}: image {number} has NaN, Inf or negative depth")
        return metres.astype(np.float16)
    raw_ids = array.T
    if raw_ids.size and int(raw_ids.max()) > NUM_RAW_CLASSES:
        raise DataError(
            f"{where}: image {number} has label {int(raw_ids.max())}, above the release's "
            f"{NUM_RAW_CLASSES} classes"
        )
    return lookup[raw_ids]


def _write_array(
    path: Path, kind: str, source: Any, numbers: tuple[int, ...], lookup: np.ndarray, where: str
) -> None:
    """Fill ``path`` (``.npy``) image by image in a temporary file, then rename it into place."""
    width, height = int(source.shape[-2]), int(source.shape[-1])
    shape = (len(numbers), 3, height, width) if kind == "rgb" else (len(numbers), height, width)
    dtype = {"rgb": np.uint8, "depth": np.float16, "labels": np.uint8}[kind]
    with atomic_path(path, ".npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for position, number in enumerate(numbers):
            array[position] = _image(kind, source, number, lookup, where)
        array.flush()
        del array


def _class_pixels(path: Path) -> list[int]:
    """Pixels per value 0..255 of a prepared label array (read in slices)."""
    labels = np.load(path, mmap_mode="r", allow_pickle=False)
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, labels.shape[0], 64):
        counts += np.bincount(np.asarray(labels[start : start + 64]).ravel(), minlength=256)
    return [int(c) for c in counts]


@PREPARERS.register(
    SEGMENTATION_NAME,
    "NYU Depth v2 labelled .mat -> 40-class RGB-D segmentation arrays "
    "(= prepare nyudv2 --task segmentation)",
)
def prepare_segmentation(
    raw: Path | None, out: Path | None, depth: str = "inpainted", verbose: bool = True
) -> Path:
    """Write the 40-class segmentation arrays from the labelled release in ``raw`` (resumable,
    atomic; the layout is in the module docstring)."""
    out = dataset_root(SEGMENTATION_NAME, out)
    command = f"run `{segmentation_command(out)}`"
    if depth not in DEPTH_KINDS:
        raise ConfigError(f"depth accepts {' or '.join(DEPTH_KINDS)}, got {depth!r}")
    if raw is None:
        raise DataError(f"{SEGMENTATION_NAME} needs the folder holding {LABELED_FILE}: {command}")
    raw = Path(raw).expanduser()
    labeled = raw / LABELED_FILE
    if not labeled.is_file():
        raise DataError(
            f"{labeled} is missing: download the labelled NYU Depth v2 release, then {command}"
        )
    try:
        import h5py
    except ImportError:
        raise ConfigError(
            f"reading {LABELED_FILE} (MATLAB v7.3) needs h5py: pip install h5py"
        ) from None
    split = _checked_split(raw / SPLITS_FILE, command)
    lookup = label_lookup(_checked_mapping(raw / MAPPING_FILE))
    params = {"dataset": SEGMENTATION_NAME, "task": "segmentation", "depth": depth}
    _check_settings(out, params)
    marker = out / UNFINISHED
    try:
        with h5py.File(labeled, "r") as handle:
            sources = _sources(handle, labeled, depth)  # checked before anything is written
            height, width = int(sources["rgb"].shape[3]), int(sources["rgb"].shape[2])
            out.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(out)
            write_json(out / "params.json", params)
            write_json(marker, {"raw": str(raw)})
            for name, numbers in split.items():
                index = out / f"{name}_index.npy"
                if not index.is_file():
                    save_npy(index, np.asarray(numbers, dtype=np.int32))
                for kind, source in sources.items():
                    path = out / f"{name}_{kind}.npy"
                    if not path.is_file():
                        _write_array(path, kind, source, numbers, lookup, str(labeled))
    except (OSError, KeyError) as exc:
        raise DataError(
            f"{labeled} is not the official labelled NYU Depth v2 file ({exc})"
        ) from None
    pixels = {name: _class_pixels(out / f"{name}_labels.npy") for name in split}
    write_json(
        out / "meta.json",
        {
            "dataset": SEGMENTATION_NAME,
            "task": "segmentation",
            "classes": list(segmentation_classes()),
            "ignore_index": IGNORE_INDEX,
            "counts": {name: len(numbers) for name, numbers in split.items()},
            "class_pixels": {name: counts[:40] for name, counts in pixels.items()},
            "void_pixels": {name: counts[IGNORE_INDEX] for name, counts in pixels.items()},
            "depth": depth,
            "depth_units": "metres (float16)",
            "size": [height, width],
            "split": "standard 795/654 of Silberman et al. (2012), data/splits/nyudv2",
            "mapping": "894 -> 40 of Gupta et al. (2013), data/splits/nyudv2",
        },
    )
    marker.unlink()
    if verbose:
        for name, numbers in split.items():
            print(f"{SEGMENTATION_NAME} {name}: {len(numbers)} RGB-D images", file=sys.stderr)
    return out
