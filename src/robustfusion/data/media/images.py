"""Image loading and the augmentations of the literature, in Pillow + torch (no torchvision).

* Audio-visual (OGM-GE / UDML): train ``RandomResizedCrop(size)`` (scale 0.08-1, aspect 3/4-4/3)
  then a horizontal flip with probability 0.5; evaluation ``Resize((size, size))``.
* RGB-D (QMF / TMC, ``AlignedConcDataset``): resize both images to ``load_size`` (256 for 224),
  train: the same random ``size`` crop and the same flip for both, evaluation: centre crop.

Images are normalised with the ImageNet mean and std. Random draws use torch's global generator,
which ``DataLoader`` seeds per worker from the trainer's seed, so runs repeat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from robustfusion.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Change of a normalised value per 0-255 intensity unit (``ModalityInfo.intensity_scale``),
#: using the mean of the three channel stds.
INTENSITY_SCALE = 1.0 / (255.0 * float(np.mean(IMAGENET_STD)))

Box = tuple[int, int, int, int]


def load_image(path: Path, mode: str = "RGB", fix: str = "") -> Image.Image:
    """Open an image file fully (so that truncation is detected here) and convert it to ``mode``."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except FileNotFoundError:
        raise DataError(f"image file {path} is missing{fix}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"image file {path} is not a readable image ({exc}){fix}") from None


def to_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``[C, H, W]`` float tensor in [0, 1], normalised channel-wise."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    m = torch.tensor(mean[: tensor.shape[0]], dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std[: tensor.shape[0]], dtype=torch.float32).view(-1, 1, 1)
    return (tensor - m) / s


def random_resized_crop_box(
    width: int,
    height: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> Box:
    """The crop box ``(left, top, right, bottom)`` of torchvision's ``RandomResizedCrop``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1]))
        aspect = math.exp(float(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)))
            left = int(torch.randint(0, width - w + 1, (1,)))
            return left, top, left + w, top + h
    # Fallback: the central crop with the aspect ratio clamped to ``ratio``.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def augment_train(image: Image.Image, size: int) -> Image.Image:
    """OGM-GE training augmentation: random resized crop to ``size`` x ``size``, random flip."""
    box = random_resized_crop_box(*image.size)
    out = image.resize((size, size), Image.BILINEAR, box=box)
    if float(torch.rand(1)) < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return out


def resize_eval(image: Image.Image, size: int) -> Image.Image:
    """OGM-GE evaluation transform: ``Resize((size, size))``."""
    return image.resize((size, size), Image.BILINEAR)


def paired_crop(
    images: Sequence[Image.Image], size: int, load_size: int, train: bool
) -> list[Image.Image]:
    """QMF's RGB-D transform: resize every image to ``load_size``, then one crop (random in
    training, central otherwise) and, in training, one random flip shared by all images."""
    resized = [im.resize((load_size, load_size), Image.BICUBIC) for im in images]
    if train:
        top = int(torch.randint(0, load_size - size + 1, (1,)))
        left = int(torch.randint(0, load_size - size + 1, (1,)))
        flip = float(torch.rand(1)) < 0.5
    else:
        top = left = int(round((load_size - size) / 2.0))
        flip = False
    out = [im.crop((left, top, left + size, top + size)) for im in resized]
    if flip:
        out = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in out]
    return out
