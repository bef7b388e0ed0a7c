"""A lazy RGB-D scene dataset over QMF / TMC's paired-image layout (``AlignedConcDataset``).

Layout: ``ROOT/<split>/<class>/<name>.png`` (or ``.jpg``), each file the RGB image (left half)
and the depth image (right half, 3 channels: HHA in QMF's release, replicated depth when made by
``robustfusion prepare nyudv2``) side by side. Class indices follow the sorted folder names
(torchvision's ``ImageFolder``). Transforms as QMF: both halves resized to ``load_size``
(256 for a 224 crop), then one shared random crop and flip in training, a centre crop otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustfusion.data.base import MultimodalDataset
from robustfusion.data.media.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_image,
    paired_crop,
    to_tensor,
)
from robustfusion.errors import DataError

MODALITIES = ("rgb", "depth")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def scan_split(folder: Path, classes: Sequence[str] | None, fix: str) -> list[tuple[Path, int]]:
    """``(file, class index)`` of every image below ``folder/<class>/``, sorted by path.

    ``classes`` fixes the class order (from the training split); ``None`` takes the sorted
    folder names of ``folder`` itself.
    """
    if not folder.is_dir():
        raise DataError(f"split folder {folder} is missing{fix}")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    order = list(classes) if classes is not None else names
    unknown = [n for n in names if n not in order]
    if unknown:
        raise DataError(
            f"class folder {folder / unknown[0]} is not a class of the training split{fix}"
        )
    items: list[tuple[Path, int]] = []
    for name in names:
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((path, order.index(name)))
    return items


def load_size_for(image_size: int) -> int:
    """QMF's resize-before-crop side: 256 for a 224 crop, scaled alike for other sizes."""
    return max(image_size, int(round(image_size * 256 / 224)))


class PairedRGBDDataset(MultimodalDataset):
    """Lazy RGB-D dataset: items ``{"rgb": [3, S, S], "depth": [3, S, S]}`` (ImageNet-normalised).

    Args:
        items: ``(file, label)`` pairs of side-by-side RGB|depth images.
        train: random crop and flip (``True``) or centre crop.
        image_size: side ``S`` of the crops.
        fix: appended to error messages.
    """

    modalities = MODALITIES

    def __init__(
        self, items: Sequence[tuple[Path, int]], *, train: bool, image_size: int, fix: str
    ) -> None:
        self.items = list(items)
        self.train = train
        self.image_size = int(image_size)
        self.load_size = load_size_for(self.image_size)
        self.fix = fix
        self.labels = torch.tensor([label for _, label in self.items], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.items)

    def targets(self) -> Tensor:
        return self.labels

    def pair(self, index: int) -> tuple[Tensor, Tensor]:
        """The transformed ``(rgb, depth)`` tensors of sample ``index``."""
        path, _ = self.items[index]
        both = load_image(path, "RGB", self.fix)
        w, h = both.size
        if w < 2:
            raise DataError(
                f"image {path} is too narrow to hold RGB and depth side by side{self.fix}"
            )
        half = w // 2
        rgb, depth = both.crop((0, 0, half, h)), both.crop((half, 0, 2 * half, h))
        rgb, depth = paired_crop([rgb, depth], self.image_size, self.load_size, self.train)
        return (
            to_tensor(rgb, IMAGENET_MEAN, IMAGENET_STD),
            to_tensor(depth, IMAGENET_MEAN, IMAGENET_STD),
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb, depth = self.pair(index)
        return {
            "inputs": {"rgb": rgb, "depth": depth},
            "present": {m: True for m in MODALITIES},
            "target": int(self.items[index][1]),
            "index": int(index),
        }
