"""CREMA-D: audio-visual emotion recognition, 6 classes (NEU, HAP, SAD, FEA, DIS, ANG).

Raw input: the official release (``AudioWAV/<clip>.wav`` and ``VideoFlash/<clip>.flv``;
``VideoMP4/<clip>.mp4`` is used where the ``.flv`` is absent). ``prepare`` writes the layout of
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

from robustfusion.data.audio import SpectrogramConfig
from robustfusion.data.av_dataset import load_av_splits
from robustfusion.data.av_prepare import PrepareSettings, RawClip, default_workers, prepare_clips
from robustfusion.data.base import DataSplits
from robustfusion.data.cache import dataset_root
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS, PREPARERS

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


def _find_video(raw: Path, clip: str) -> Path | None:
    for candidate in (raw / "VideoFlash" / f"{clip}.flv", raw / "VideoMP4" / f"{clip}.mp4"):
        if candidate.is_file():
            return candidate
    return None


@PREPARERS.register(NAME, "CREMA-D release (AudioWAV/, VideoFlash/) -> 1-fps frames + spectrograms")
def prepare(
    raw: Path | None,
    out: Path | None,
    workers: int | None = None,
    frame_size: int | None = None,
    verbose: bool = True,
) -> Path:
    """Prepare the CREMA-D release in ``raw`` into ``out`` (default: the dataset cache).

    Args:
        workers: decoding processes (default: CPUs, at most 8).
        frame_size: resize frames so that their shorter side is this (default: keep 480 x 360).
    """
    out = dataset_root(NAME, out)
    command = f"robustfusion prepare {NAME} --raw RAW --out {out}"
    if raw is None:
        raise DataError(f"{NAME} needs the official release: run `{command}` with RAW its folder")
    raw = Path(raw).expanduser()
    if not (raw / "AudioWAV").is_dir():
        raise DataError(
            f"{raw} has no AudioWAV/ folder: pass the CREMA-D release folder (with AudioWAV/ and "
            "VideoFlash/) as --raw"
        )
    listed = {split: split_list(split) for split in ("train", "test")}
    clips: list[RawClip] = []
    for split, rows in listed.items():
        for clip, label in rows:
            wav, video = raw / "AudioWAV" / f"{clip}.wav", _find_video(raw, clip)
            if wav.is_file() and video is not None:
                clips.append(RawClip(clip, label, split, video, wav))
    if not clips:
        raise DataError(
            f"{raw} holds none of the listed CREMA-D clips (AudioWAV/<clip>.wav with "
            "VideoFlash/<clip>.flv): check --raw"
        )
    settings = PrepareSettings(dataset=NAME, fps=1, frame_size=frame_size, spectrogram=SPECTROGRAM)
    return prepare_clips(
        clips,
        {split: [c for c, _ in rows] for split, rows in listed.items()},
        out,
        settings,
        CLASSES,
        command,
        workers=workers or default_workers(),
        verbose=verbose,
    )


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
