"""Kinetics-Sounds: audio-visual action recognition, the 31-class lists of OGM-GE.

Labels come from the shipped lists (``data/splits/kinetics_sounds``: 14799 train / 2597 test,
labels 0..30, second column = clip length 10 s; see its PROVENANCE.md); class names from the
folder names of the raw clips (checked by :mod:`robustfusion.data.prepare.kinetics_sounds`).

Prepared: 1-fps JPEG frames (10 per clip) and the log-spectrogram of the clip's audio stream
(22.05 kHz, whole 10 s clip, n_fft 512, hop 353: 257 x 625). Inputs: ``audio`` ``[1, 257, 625]``,
``visual`` 3 frames stacked along channels ``[9, 224, 224]``; ResNet-18 encoders by default.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from robustfusion.data.base import DataSplits
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.av_clips import load_av_splits
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS

NAME = "kinetics_sounds"
NUM_CLASSES = 31
#: Length of every listed clip in seconds (the lists' second column).
CLIP_SECONDS = 10
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".flv")
_LONG_ID = re.compile(r"^(.{11})_(\d{6})_(\d{6})$")
_SHORT_ID = re.compile(r"^(.{11})_(\d+)$")


def split_list(split: str) -> list[tuple[str, int, int]]:
    """The shipped list of ``split`` as ``(clip_id, seconds, label)``."""
    path = resources.files("robustfusion.data").joinpath("splits", NAME, f"{split}.txt")
    rows: list[tuple[str, int, int]] = []
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                clip, seconds, label = line.strip().split(",")
                rows.append((clip, int(seconds), int(label)))
    return rows


def long_clip_id(clip: str, seconds: int = CLIP_SECONDS) -> str:
    """The Kinetics form ``<YouTubeID>_<start:06d>_<end:06d>`` of a list id (long or short form).

    YouTube ids are 11 characters, so ``abcdefghijk_2`` is the clip ``[2, 12)`` s of
    ``abcdefghijk``: ``abcdefghijk_000002_000012``.
    """
    if _LONG_ID.match(clip):
        return clip
    match = _SHORT_ID.match(clip)
    if match is None:
        raise DataError(f"{clip!r} is not a Kinetics clip id (YouTubeID_START[_END])")
    start = int(match.group(2))
    return f"{match.group(1)}_{start:06d}_{start + seconds:06d}"


@DATASETS.register(
    NAME,
    "Kinetics-Sounds audio-visual actions, 31 classes, 14799/2597 (needs `robustfusion prepare`)",
)
def load(
    root: Path | None,
    seed: int,
    image_size: int = 224,
    frames: int = 3,
    val_fraction: float = 0.1,
) -> DataSplits:
    """Load prepared Kinetics-Sounds from ``root`` (default: the dataset cache).

    Args:
        image_size: side of the square frames.
        frames: frames per sample, stacked along channels (3 frames: 9 channels).
        val_fraction: share of each training class held out for validation.
    """
    return load_av_splits(
        dataset_root(NAME, root),
        NAME,
        seed,
        image_size=image_size,
        frames=frames,
        val_fraction=val_fraction,
        description="Kinetics-Sounds (31 classes): actions from audio and video frames (1 fps)",
    )
