"""Kinetics-Sounds: audio-visual action recognition, the 31-class lists of OGM-GE.

Raw input: a folder of class-named folders of clips, as the Kinetics download scripts write them:
``RAW/<class name>/<YouTubeID>_<start>_<end>.mp4`` (any of .mp4 .mkv .webm .avi .flv; the short
test ids ``<YouTubeID>_<start>`` are accepted as file stems too). Labels come from the shipped
lists (``data/splits/kinetics_sounds``: 14799 train / 2597 test, labels 0..30, second column =
clip length 10 s; see its PROVENANCE.md); class names come from the folder names, and
``prepare`` checks that each label has exactly one folder name and each folder one label.

Prepared: 1-fps JPEG frames (10 per clip) and the log-spectrogram of the clip's audio stream
(22.05 kHz, whole 10 s clip, n_fft 512, hop 353: 257 x 625). Inputs: ``audio`` ``[1, 257, 625]``,
``visual`` 3 frames stacked along channels ``[9, 224, 224]``; ResNet-18 encoders by default.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from robustfusion.data.audio import SpectrogramConfig
from robustfusion.data.av_dataset import load_av_splits
from robustfusion.data.av_prepare import PrepareSettings, RawClip, default_workers, prepare_clips
from robustfusion.data.base import DataSplits
from robustfusion.data.cache import dataset_root
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS, PREPARERS

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


def _scan(raw: Path) -> dict[str, tuple[Path, str]]:
    """File stem -> (clip file, class folder name) of every clip below ``raw``."""
    found: dict[str, tuple[Path, str]] = {}
    for folder in sorted(p for p in raw.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                found.setdefault(path.stem, (path, folder.name))
    return found


def class_names_from_folders(pairs: list[tuple[int, str, str]]) -> tuple[str, ...]:
    """Label -> class name from ``(label, folder, clip)`` triples, checking the mapping is 1:1."""
    by_label: dict[int, dict[str, str]] = {}
    by_folder: dict[str, dict[int, str]] = {}
    for label, folder, clip in pairs:
        by_label.setdefault(label, {}).setdefault(folder, clip)
        by_folder.setdefault(folder, {}).setdefault(label, clip)
    for label, folders in sorted(by_label.items()):
        if len(folders) > 1:
            detail = ", ".join(f"{clip} in {folder!r}" for folder, clip in folders.items())
            raise DataError(
                f"label {label} of the Kinetics-Sounds lists is spread over several class folders "
                f"({detail}): move the clips into one folder per class"
            )
    for folder, labels in sorted(by_folder.items()):
        if len(labels) > 1:
            detail = ", ".join(f"{clip} (label {label})" for label, clip in labels.items())
            raise DataError(
                f"class folder {folder!r} holds clips of several labels ({detail}): each folder "
                "must hold one Kinetics-Sounds class"
            )
    return tuple(
        next(iter(by_label[k])) if k in by_label else f"label_{k:02d}" for k in range(NUM_CLASSES)
    )


@PREPARERS.register(NAME, "folder of class-named Kinetics clips -> 1-fps frames + spectrograms")
def prepare(
    raw: Path | None,
    out: Path | None,
    workers: int | None = None,
    frame_size: int | None = None,
    audio_seconds: float = float(CLIP_SECONDS),
    verbose: bool = True,
) -> Path:
    """Prepare the class-named clips in ``raw`` into ``out`` (default: the dataset cache).

    Args:
        workers: decoding processes (default: CPUs, at most 8).
        frame_size: resize frames so that their shorter side is this (default: keep).
        audio_seconds: audio length of the spectrogram (tiled or cut; default the whole 10 s).
    """
    out = dataset_root(NAME, out)
    command = f"robustfusion prepare {NAME} --raw RAW --out {out}"
    if raw is None or not Path(raw).expanduser().is_dir():
        raise DataError(f"{NAME} needs a folder of class-named clip folders: run `{command}`")
    raw = Path(raw).expanduser()
    found = _scan(raw)
    listed = {split: split_list(split) for split in ("train", "test")}
    clips: list[RawClip] = []
    pairs: list[tuple[int, str, str]] = []
    for split, rows in listed.items():
        for clip, _, label in rows:
            hit = found.get(clip) or found.get(long_clip_id(clip))
            if hit is not None:
                clips.append(RawClip(clip, label, split, hit[0], None))
                pairs.append((label, hit[1], clip))
    if not clips:
        raise DataError(
            f"{raw} holds none of the listed Kinetics-Sounds clips (<class>/<YouTubeID>_<start>_"
            "<end>.mp4): check --raw"
        )
    classes = class_names_from_folders(pairs)
    settings = PrepareSettings(
        dataset=NAME,
        fps=1,
        frame_size=frame_size,
        max_frames=CLIP_SECONDS,
        spectrogram=SpectrogramConfig(sample_rate=22050, seconds=audio_seconds, n_fft=512, hop=353),
    )
    return prepare_clips(
        clips,
        {split: [c for c, _, _ in rows] for split, rows in listed.items()},
        out,
        settings,
        classes,
        command,
        workers=workers or default_workers(),
        verbose=verbose,
    )


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
