"""NYU Depth v2 RGB-D semantic segmentation, 40 classes, 795/654 train/test.

**Semantic segmentation, 40 classes** (Gupta et al., 2013): a *separate* registered dataset,
``nyudv2_segmentation``, rather than a ``task`` option of ``nyudv2``. The two share the raw
release and the split but nothing else: another prepared folder (arrays, not paired PNGs), other
options (``size`` ``H x W`` instead of a square ``image_size``), another target (a label map per
image) and another :attr:`DatasetInfo.task`; one loader serving both would take options that mean
nothing for half its calls, and its default folder could not follow the dataset's name.
``robustfusion prepare nyudv2 --task segmentation`` (or ``prepare nyudv2_segmentation``)
writes it from the same download. The split (795/654) and the 894 -> 40 class mapping ship with
the package (``data/splits/nyudv2``, see its PROVENANCE.md), so only the labelled ``.mat`` is
needed. Depth is in metres, standardised by the mean and std of the training images' valid
(non-zero) depth, as ESANet does; ``DatasetInfo.extra`` records both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo, TensorMultimodalDataset
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.nyudv2 import NAME, UNFINISHED
from robustfusion.data.media.images import IMAGENET_MEAN, IMAGENET_STD, INTENSITY_SCALE
from robustfusion.data.stratify import stratified_holdout
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS
from robustfusion.tasks import IGNORE_INDEX

#: The 40-class segmentation dataset (its prepared folder has this name too).
SEGMENTATION_NAME = "nyudv2_segmentation"
#: Gupta et al.'s 894 -> 40 mapping as nyuv2-meta-data distributes it (optional in ``--raw``).
MAPPING_FILE = "classMapping40.mat"
#: Images in the labelled release; the shipped split numbers them 1..1449.
NUM_IMAGES = 1449
#: Raw NYU class ids in ``labels`` are 1..894 (0 = void).
NUM_RAW_CLASSES = 894
SEGMENTATION_SPLITS = ("train", "test")
DEPTH_KINDS = ("inpainted", "raw")
DEFAULT_SIZE = (240, 320)


def segmentation_command(root: Path | str) -> str:
    """The command that (re)builds the segmentation folder ``root``."""
    return f"robustfusion prepare {NAME} --raw RAW --task segmentation --out {root}"


def _shipped(filename: str) -> str:
    path = resources.files("robustfusion.data").joinpath("splits", NAME, filename)
    return path.read_text(encoding="utf-8")


@cache
def shipped_split() -> dict[str, tuple[int, ...]]:
    """The standard 795/654 split (Silberman et al., 2012) as 1-based image numbers."""
    return {s: tuple(int(x) for x in _shipped(f"{s}.txt").split()) for s in SEGMENTATION_SPLITS}


@cache
def shipped_class_mapping() -> np.ndarray:
    """``[894]`` uint8: the 40-class id (1..40) of each raw NYU class id 1..894 (Gupta et al.)."""
    rows = _shipped("class_mapping40.csv").splitlines()[1:]
    mapping = np.array([int(row.split(",")[1]) for row in rows], dtype=np.uint8)
    ids = [int(row.split(",")[0]) for row in rows]
    if ids != list(range(1, NUM_RAW_CLASSES + 1)) or not set(mapping.tolist()) <= set(range(1, 41)):
        raise DataError("the shipped class_mapping40.csv is damaged: reinstall robustfusion")
    mapping.setflags(write=False)
    return mapping


@cache
def segmentation_classes() -> tuple[str, ...]:
    """The 40 class names in label order 0..39 (Gupta et al.; spelling as distributed)."""
    return tuple(line for line in _shipped("classes40.txt").splitlines() if line)


def label_lookup(mapping: np.ndarray) -> np.ndarray:
    """``[895]`` uint8 table: raw id -> label 0..39, void (0) -> :data:`IGNORE_INDEX`."""
    table = np.full(NUM_RAW_CLASSES + 1, IGNORE_INDEX, dtype=np.uint8)
    table[1:] = np.asarray(mapping, dtype=np.int64) - 1
    return table


def parse_size(size: object) -> tuple[int, int]:
    """``"240x320"``, ``(240, 320)`` or ``[240, 320]`` -> ``(H, W)``, each side >= 1."""
    parts: Sequence[object]
    if isinstance(size, str):
        parts = size.lower().replace(" ", "").split("x")
    elif isinstance(size, Sequence):
        parts = size
    else:
        parts = ()
    try:
        if len(parts) != 2 or isinstance(size, bool):
            raise ValueError
        height, width = (int(str(p)) for p in parts)
    except ValueError:
        raise ConfigError(f"size accepts HxW, e.g. 240x320 or 480x640, got {size!r}") from None
    if height < 1 or width < 1:
        raise ConfigError(f"size must be at least 1x1, got {height}x{width}")
    return height, width


def _load_array(path: Path, dtype: np.dtype, ndim: int, fix: str) -> np.ndarray:
    """A prepared ``.npy`` (memory-mapped, no pickle), checked for dtype and rank."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} is missing{fix}") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable .npy array ({exc}){fix}") from None
    if array.dtype != dtype or array.ndim != ndim:
        raise DataError(
            f"{path} holds {array.dtype} {tuple(array.shape)}, not {np.dtype(dtype)} with "
            f"{ndim} axes{fix}"
        )
    return array


def _read_segmentation_split(
    root: Path, split: str, size: tuple[int, int], fix: str
) -> tuple[Tensor, Tensor, Tensor]:
    """``rgb`` uint8 ``[N, 3, H, W]``, ``depth`` float32 metres ``[N, H, W]`` and ``labels``
    uint8 ``[N, H, W]`` of ``split``, resized to ``size`` (RGB bilinear with antialiasing, depth
    and labels nearest, so that no depth hole and no label is blended)."""
    rgb = _load_array(root / f"{split}_rgb.npy", np.dtype(np.uint8), 4, fix)
    depth = _load_array(root / f"{split}_depth.npy", np.dtype(np.float16), 3, fix)
    labels = _load_array(root / f"{split}_labels.npy", np.dtype(np.uint8), 3, fix)
    n, _, height, width = rgb.shape
    if rgb.shape[1] != 3 or depth.shape != (n, height, width) or labels.shape != depth.shape:
        raise DataError(
            f"{root}: {split} arrays disagree (rgb {tuple(rgb.shape)}, depth "
            f"{tuple(depth.shape)}, labels {tuple(labels.shape)}){fix}"
        )
    out_rgb = torch.empty((n, 3, *size), dtype=torch.uint8)
    out_depth = torch.empty((n, *size), dtype=torch.float32)
    out_labels = torch.empty((n, *size), dtype=torch.uint8)
    same = size == (height, width)
    step = 32
    for start in range(0, n, step):
        part = slice(start, min(n, start + step))
        r = torch.from_numpy(np.array(rgb[part]))
        d = torch.from_numpy(np.array(depth[part], dtype=np.float32))
        lab = torch.from_numpy(np.array(labels[part]))
        if not same:
            r = F.interpolate(r.float(), size=size, mode="bilinear", antialias=True)
            r = r.round().clamp(0, 255).to(torch.uint8)
            d = F.interpolate(d[:, None], size=size, mode="nearest-exact")[:, 0]
            lab = F.interpolate(lab[:, None].float(), size=size, mode="nearest-exact")[:, 0]
            lab = lab.to(torch.uint8)
        out_rgb[part], out_depth[part], out_labels[part] = r, d, lab
    if not bool(torch.isfinite(out_depth).all()) or bool((out_depth < 0).any()):
        raise DataError(f"{root / f'{split}_depth.npy'} holds NaN, Inf or negative depth{fix}")
    bad = (out_labels >= len(segmentation_classes())) & (out_labels != IGNORE_INDEX)
    if bool(bad.any()):
        raise DataError(
            f"{root / f'{split}_labels.npy'} holds labels outside 0..39 and {IGNORE_INDEX}{fix}"
        )
    return out_rgb, out_depth, out_labels


def depth_statistics(depth: Tensor) -> tuple[float, float]:
    """Mean and (sample) std of the positive values of ``depth``, accumulated in float64 one
    image at a time; ``(0, 0)`` when fewer than two values are positive."""
    count, total, squares = 0, 0.0, 0.0
    for image in depth:
        valid = image[image > 0].double()
        count += int(valid.numel())
        total += float(valid.sum())
        squares += float((valid * valid).sum())
    if count < 2:
        return 0.0, 0.0
    mean = total / count
    variance = max(0.0, (squares - count * mean * mean) / (count - 1))
    return mean, variance**0.5


def _normalise_rgb(rgb: Tensor) -> Tensor:
    """uint8 ``[N, 3, H, W]`` -> float32, ImageNet mean/std per channel."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (rgb.float() / 255.0 - mean) / std


@DATASETS.register(
    SEGMENTATION_NAME,
    "NYU Depth v2 RGB-D semantic segmentation, 40 classes, 795/654 "
    "(`robustfusion prepare nyudv2 --task segmentation`)",
)
def load_segmentation(
    root: Path | None,
    seed: int,
    size: str | tuple[int, int] | list[int] = DEFAULT_SIZE,
    val_fraction: float = 0.1,
) -> DataSplits:
    """Load the prepared 40-class segmentation arrays from ``root`` (default: the dataset cache).

    Args:
        size: ``H x W`` of every map (``"240x320"`` default, ``"480x640"`` the full release).
            Memory: about ``1449 * H * W * 24`` bytes (float inputs, int64 label maps).
        val_fraction: share of the 795 training images held out for validation (seeded).

    Targets are ``[H, W]`` maps of 0..39, :data:`~robustfusion.tasks.IGNORE_INDEX` where NYU
    has no label. Inputs: ``rgb`` ``[3, H, W]`` (ImageNet mean/std) and ``depth`` ``[1, H, W]``
    (metres standardised by the training images' valid depth; missing raw depth -> 0).
    """
    root = dataset_root(SEGMENTATION_NAME, root)
    fix = f": run `{segmentation_command(root)}` (resumable)"
    height, width = parse_size(size)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if (root / UNFINISHED).exists():
        raise DataError(f"the preparation of {root} did not finish{fix}")
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{root / 'meta.json'} is missing: {root} is not prepared{fix}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{root / 'meta.json'} is not readable ({exc}){fix}") from None
    if not isinstance(meta, dict) or meta.get("task") != "segmentation":
        raise DataError(f"{root} is not a prepared NYU Depth v2 segmentation folder{fix}")
    train_rgb, train_depth, train_labels = _read_segmentation_split(
        root, "train", (height, width), fix
    )
    test_rgb, test_depth, test_labels = _read_segmentation_split(root, "test", (height, width), fix)
    keep, held = stratified_holdout([0] * int(train_rgb.shape[0]), val_fraction, seed)
    keep_t, held_t = torch.tensor(keep, dtype=torch.long), torch.tensor(held, dtype=torch.long)
    depth_mean, depth_std = depth_statistics(train_depth[keep_t])
    if not depth_std > 0:
        raise DataError(
            f"{root / 'train_depth.npy'} holds no varying positive depth in training images{fix}"
        )

    def make(rgb: Tensor, depth: Tensor, labels: Tensor) -> TensorMultimodalDataset:
        standard = ((depth - depth_mean) / depth_std).masked_fill(depth <= 0, 0.0)
        return TensorMultimodalDataset(
            {"rgb": _normalise_rgb(rgb), "depth": standard[:, None]}, labels.long()
        )

    classes = segmentation_classes()
    info = DatasetInfo(
        name=SEGMENTATION_NAME,
        modalities=(
            ModalityInfo("rgb", (3, height, width), "image", INTENSITY_SCALE),
            ModalityInfo("depth", (1, height, width), "map", 1.0 / depth_std),
        ),
        num_classes=len(classes),
        class_names=classes,
        description="NYU Depth v2 40-class semantic segmentation from RGB and depth",
        task="segmentation",
        extra={
            "default_encoders": {"rgb": "resnet18", "depth": "resnet18"},
            "root": str(root),
            "split": (
                f"official 795/654 (Silberman et al., 2012); val = {val_fraction:.0%} of train, "
                f"seed {seed}"
            ),
            "ignore_index": IGNORE_INDEX,
            "depth": meta.get("depth", "inpainted"),
            "depth_mean": depth_mean,
            "depth_std": depth_std,
            "depth_units": "metres, standardised: (d - depth_mean) / depth_std; missing -> 0",
            "size": [height, width],
        },
    )
    return DataSplits(
        train=make(train_rgb[keep_t], train_depth[keep_t], train_labels[keep_t]),
        val=make(train_rgb[held_t], train_depth[held_t], train_labels[held_t]),
        test=make(test_rgb, test_depth, test_labels),
        info=info,
    )
