"""``robustfusion prepare cremad``: the CREMA-D release -> the layout of
:mod:`robustfusion.data.datasets.cremad`.

Raw input: the official release (``AudioWAV/<clip>.wav`` and ``VideoFlash/<clip>.flv``;
``VideoMP4/<clip>.mp4`` is used where the ``.flv`` is absent). Output: 1-fps JPEG frames and
cached log-spectrograms of the clips of the official lists (see
:mod:`robustfusion.data.prepare.av_clips`).
"""

from __future__ import annotations

from pathlib import Path

from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.cremad import CLASSES, NAME, SPECTROGRAM, split_list
from robustfusion.data.prepare.av_clips import (
    PrepareSettings,
    RawClip,
    default_workers,
    prepare_clips,
)
from robustfusion.errors import DataError
from robustfusion.registry import PREPARERS


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
