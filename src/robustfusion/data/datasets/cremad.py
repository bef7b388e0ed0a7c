"""CREMA-D: audio-visual emotion recognition, 6 classes (NEU, HAP, SAD, FEA, DIS, ANG).

The loader of the folder that :mod:`robustfusion.data.prepare.cremad` writes in the layout of
OGM-GE / UDML: 1-fps JPEG frames in ``Image-01-FPS/<clip>/`` and the audio as a cached
log-spectrogram (22.05 kHz, 3 s, n_fft 512, hop 353: 257 x 188), for the official 6698/744
train/test lists shipped in ``data/splits/cremad`` (see its PROVENANCE.md). Validation: a seeded
stratified 10 % of train. Inputs: ``audio`` ``[1, 257, 188]``, ``visual`` ``[3, 224, 224]``
(one frame, as OGM-GE's CREMA-D default), ResNet-18 encoders for both by default.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from robustfusion.data.base import DataSplits
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.av_clips import load_av_splits
from robustfusion.data.media.audio import SpectrogramConfig
from robustfusion.registry import DATASETS

NAME = "cremad"
#: Class order of OGM-GE's ``stat.csv`` (label index = position).
CLASSES: tuple[str, ...] = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
SPECTROGRAM = SpectrogramConfig(sample_rate=22050, seconds=3.0, n_fft=512, hop=353)


def split_list(split: str) -> list[tuple[str, int]]:
    """The shipped official list of ``split`` (``train`` or ``test``) as ``(clip_id, label)``."""
    path = resources.files("robustfusion.data").joinpath("splits", NAME, f"{split}.csv")
    rows: list[tuple[str, int]] = []
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            if row:
                rows.append((row[0].strip(), CLASSES.index(row[1].strip())))
    return rows


@DATASETS.register(
    NAME, "CREMA-D audio-visual emotion, 6 classes, 6698/744 (needs `robustfusion prepare cremad`)"
)
def load(
    root: Path | None,
    seed: int,
    image_size: int = 224,
    frames: int = 1,
    val_fraction: float = 0.1,
) -> DataSplits:
    """Load prepared CREMA-D from ``root`` (default: the dataset cache).

    Args:
        image_size: side of the square frames (224 as in OGM-GE; smaller for quick runs).
        frames: frames per sample; more than one are stacked along channels (3 * frames).
        val_fraction: share of each training class held out for validation.
    """
    return load_av_splits(
        dataset_root(NAME, root),
        NAME,
        seed,
        image_size=image_size,
        frames=frames,
        val_fraction=val_fraction,
        description="CREMA-D: 6 emotions from audio (log-spectrogram) and face video (1 fps)",
    )
