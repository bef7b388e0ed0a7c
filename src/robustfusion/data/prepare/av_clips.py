"""Preparation of audio-visual clips into the layout of :mod:`robustfusion.data.datasets.av_clips`.

For every clip: frames at ``fps`` (PyAV, Pillow; JPEG as OGM-GE's ``ffmpeg -vf fps=1``) and the
cached log-magnitude spectrogram (``.npy``) of its audio (a WAV file, or the clip's own audio
stream). Resumable: a clip whose frame folder and spectrogram both exist is skipped; every output
is written atomically (temporary name, then rename), so an interrupted run leaves no half-written
file. The index files and ``meta.json`` are written last. A raw clip that cannot be decoded is
recorded in ``meta.json`` under ``failed`` (with the reason) and left out of the index.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from robustfusion.atomic import (
    atomic_directory,
    remove_stale_temporaries,
    save_image,
    save_npy,
    write_json,
    write_text,
)
from robustfusion.data.datasets.av_clips import (
    ClipEntry,
    frame_dir_name,
    frame_name,
    write_index_rows,
)
from robustfusion.data.media.audio import (
    SpectrogramConfig,
    spectrogram_from_wav,
    spectrogram_from_waveform,
)
from robustfusion.data.media.video import extract_audio, extract_frames
from robustfusion.errors import ConfigError, DataError

#: Version of the prepared layout; a loader refuses folders of another version.
FORMAT_VERSION = 1
SPLITS = ("train", "test")


@dataclass(frozen=True)
class RawClip:
    """A clip of the raw release: id, label, split, its video and (optional) separate WAV."""

    clip: str
    label: int
    split: str
    video: Path
    audio: Path | None = None


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that determines the prepared files (stored in ``params.json``)."""

    dataset: str
    fps: int = 1
    frame_format: str = "jpg"
    frame_size: int | None = None
    max_frames: int | None = None
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "format": FORMAT_VERSION,
            "fps": self.fps,
            "frame_format": self.frame_format,
            "frame_size": self.frame_size,
            "max_frames": self.max_frames,
            "spectrogram": self.spectrogram.to_dict(),
        }


def _resize_short_side(image: Image.Image, side: int | None) -> Image.Image:
    if side is None:
        return image
    w, h = image.size
    scale = side / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)


def clip_outputs(out: Path, settings: PrepareSettings, clip: str) -> tuple[Path, Path]:
    """``(frame folder, spectrogram file)`` of ``clip`` in the prepared folder ``out``."""
    return (
        out / frame_dir_name(settings.fps) / clip,
        out / "spectrograms" / f"{clip}.npy",
    )


def prepare_clip(raw: RawClip, out: Path, settings: PrepareSettings) -> int:
    """Write the frames and spectrogram of one clip (skipping what exists); return its frames."""
    frame_dir, spec_path = clip_outputs(out, settings, raw.clip)
    if not spec_path.is_file():
        if raw.audio is not None:
            spec = spectrogram_from_wav(raw.audio, settings.spectrogram)
        else:
            samples, rate = extract_audio(raw.video)
            spec = spectrogram_from_waveform(samples, rate, settings.spectrogram)
        save_npy(spec_path, spec)
    if not frame_dir.is_dir():
        frames = extract_frames(raw.video, settings.fps, settings.max_frames)
        with atomic_directory(frame_dir) as tmp:
            for position, image in enumerate(frames):
                image = _resize_short_side(image, settings.frame_size)
                params = {"quality": 95} if settings.frame_format == "jpg" else {}
                save_image(tmp / frame_name(position, settings.frame_format), image, **params)
    count = sum(1 for p in frame_dir.iterdir() if p.name.startswith("frame_"))
    if count == 0:
        raise DataError(f"no frames were written for {raw.video}")
    return count


def _prepare_one(args: tuple[RawClip, Path, PrepareSettings]) -> tuple[str, int, str]:
    raw, out, settings = args
    try:
        return raw.clip, prepare_clip(raw, out, settings), ""
    except DataError as exc:
        return raw.clip, 0, str(exc)


def _collect(
    results: Iterable[tuple[str, int, str]], total: int, name: str, verbose: bool
) -> list[tuple[str, int, str]]:
    """Gather per-clip results, printing progress about every 5 % when ``verbose``."""
    collected, every = [], max(1, total // 20)
    for number, result in enumerate(results, start=1):
        collected.append(result)
        if verbose and (number % every == 0 or number == total):
            print(f"{name}: {number}/{total} clips", file=sys.stderr, flush=True)
    return collected


def _check_params(out: Path, settings: PrepareSettings, command: str) -> None:
    path = out / "params.json"
    wanted = settings.to_dict()
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            found = None
        if found != json.loads(json.dumps(wanted)):
            raise ConfigError(
                f"{out} was prepared with other settings ({path}); pass a new --out or delete "
                f"that folder, then run `{command}` again"
            )
    else:
        write_json(path, wanted)


def prepare_clips(
    clips: Sequence[RawClip],
    listed: Mapping[str, Sequence[str]],
    out: Path,
    settings: PrepareSettings,
    classes: Sequence[str],
    command: str,
    workers: int = 1,
    extra_meta: Mapping[str, Any] | None = None,
    verbose: bool = True,
) -> Path:
    """Prepare ``clips`` into ``out`` and write ``index_{train,test}.csv`` and ``meta.json``.

    Args:
        clips: the raw clips found (each with its label and split).
        listed: split -> every clip id the official lists name (to count missing ones).
        classes: class names in label order.
        command: the ``prepare`` command line, quoted in errors.
        workers: processes decoding clips in parallel.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    _check_params(out, settings, command)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    jobs = [(clip, out, settings) for clip in clips]
    if workers == 1:
        results = _collect(map(_prepare_one, jobs), len(jobs), settings.dataset, verbose)
    else:
        # "spawn": forking a process that holds torch/FFmpeg thread locks can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            done = pool.map(_prepare_one, jobs, chunksize=8)
            results = _collect(done, len(jobs), settings.dataset, verbose)
    frames = {clip: count for clip, count, error in results if not error}
    failed = {clip: error for clip, _, error in results if error}
    found = {c.clip for c in clips}
    meta: dict[str, Any] = {
        **settings.to_dict(),
        "classes": list(classes),
        "spectrogram_shape": list(settings.spectrogram.shape),
        "counts": {},
        "missing": {},
        "failed": failed,
        **dict(extra_meta or {}),
    }
    for split in SPLITS:
        entries = [
            ClipEntry(c.clip, c.label, frames[c.clip])
            for c in clips
            if c.split == split and c.clip in frames
        ]
        write_text(out / f"index_{split}.csv", write_index_rows(entries))
        missing = [clip for clip in listed.get(split, ()) if clip not in found]
        meta["counts"][split] = {
            "listed": len(listed.get(split, ())),
            "prepared": len(entries),
            "missing": len(missing),
            "failed": sum(1 for c in clips if c.split == split and c.clip in failed),
        }
        meta["missing"][split] = missing
    write_json(out / "meta.json", meta)
    if verbose:
        for split in SPLITS:
            c = meta["counts"][split]
            print(
                f"{settings.dataset} {split}: {c['prepared']} of {c['listed']} listed clips "
                f"prepared, {c['missing']} missing from the raw folder, {c['failed']} failed",
                file=sys.stderr,
            )
        for clip, error in sorted(failed.items())[:10]:
            print(f"  failed {clip}: {error}", file=sys.stderr)
    return out


def default_workers() -> int:
    """Worker processes for preparation: the CPUs available, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
