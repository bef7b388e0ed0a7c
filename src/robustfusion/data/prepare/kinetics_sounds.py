"""``robustfusion prepare kinetics_sounds``: class-named Kinetics clips -> the layout of
:mod:`robustfusion.data.datasets.kinetics_sounds`.

Raw input: a folder of class-named folders of clips, as the Kinetics download scripts write them:
``RAW/<class name>/<YouTubeID>_<start>_<end>.mp4`` (any of .mp4 .mkv .webm .avi .flv; the short
test ids ``<YouTubeID>_<start>`` are accepted as file stems too). Class names come from the
folder names; each label must have exactly one folder name and each folder one label.
"""

from __future__ import annotations

from pathlib import Path

from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.kinetics_sounds import (
    CLIP_SECONDS,
    NAME,
    NUM_CLASSES,
    VIDEO_SUFFIXES,
    long_clip_id,
    split_list,
)
from robustfusion.data.media.audio import SpectrogramConfig
from robustfusion.data.prepare.av_clips import (
    PrepareSettings,
    RawClip,
    default_workers,
    prepare_clips,
)
from robustfusion.errors import DataError
from robustfusion.registry import PREPARERS


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
