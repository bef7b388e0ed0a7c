"""``robustfusion prepare nyudv2``: the official labelled NYU Depth v2 release -> QMF's layout
(:mod:`robustfusion.data.datasets.nyudv2`).

Raw input: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py, an optional
dependency) and ``splits.mat`` (``trainNdxs`` 795, ``testNdxs`` 654, 1-based). Depth is written in
metres scaled to 0-255 over ``max_depth`` (10 m), replicated to 3 channels (QMF uses HHA).
Resumable (existing images are kept) and atomic (each image is renamed into place; a marker file
flags an unfinished folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from robustfusion.atomic import save_image, write_json
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.nyudv2 import (
    CLASSES,
    LABELED_FILE,
    NAME,
    SPLITS_FILE,
    UNFINISHED,
    scene_class,
)
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import PREPARERS


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
    NAME, "NYU Depth v2 labelled .mat + splits.mat -> QMF's paired RGB|depth folders"
)
def prepare(
    raw: Path | None, out: Path | None, max_depth: float = 10.0, verbose: bool = True
) -> Path:
    """Write QMF's layout from the official labelled release in ``raw`` (resumable, atomic)."""
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
        import sys

        for split, per_class in counts.items():
            print(f"{NAME} {split}: {sum(per_class.values())} RGB-D pairs", file=sys.stderr)
    return out
