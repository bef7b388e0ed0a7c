"""Builders of tiny fake releases in the official layouts: real WAV files (``wave``), real encoded
video (PyAV: Sorenson/FLV1 in ``.flv`` as CREMA-D's VideoFlash, MPEG-4 + AAC in ``.mp4`` as
Kinetics clips) and real PNGs (Pillow)."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from robustfusion.data.datasets import cremad, kinetics_sounds


def tone(seconds: float, rate: int, freq: float, seed: int = 0) -> np.ndarray:
    """A sine tone with a little noise, float32 in [-1, 1]."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0.0, 0.01, t.size)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """A 16-bit PCM WAV file (``channels`` copies of ``samples``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ints = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    data = np.repeat(ints[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.tobytes())
    return path


def frame_pattern(index: int, size: tuple[int, int], value: int) -> np.ndarray:
    """An RGB frame ``[H, W, 3]`` whose colour depends on ``value`` and ``index``."""
    w, h = size
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[..., 0] = (value * 40) % 256
    frame[..., 1] = (index * 30) % 256
    frame[: h // 2, : w // 2, 2] = 200
    return frame


def write_video(
    path: Path,
    *,
    codec: str,
    seconds: float,
    fps: int = 5,
    size: tuple[int, int] = (48, 32),
    value: int = 0,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
) -> Path:
    """Encode a real video file with PyAV (and an AAC audio track when ``audio`` is given)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, size, value), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None and audio is not None:
            chunk = 1024
            for start in range(0, audio.size, chunk):
                piece = audio[start : start + chunk].reshape(1, -1).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def cremad_clips(per_class_train: int, per_class_test: int) -> dict[str, list[tuple[str, int]]]:
    """The first clip ids of every class in the official lists."""
    chosen: dict[str, list[tuple[str, int]]] = {}
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        rows, picked = cremad.split_list(split), []
        for label in range(len(cremad.CLASSES)):
            picked += [r for r in rows if r[1] == label][:count]
        chosen[split] = picked
    return chosen


def make_cremad_release(
    root: Path, per_class_train: int = 3, per_class_test: int = 1
) -> dict[str, list[tuple[str, int]]]:
    """A tiny CREMA-D release: ``AudioWAV/<clip>.wav`` (16 kHz, ~1.5 s) and
    ``VideoFlash/<clip>.flv`` (FLV1, 2.2 s at 5 fps: 3 frames at 1 fps)."""
    chosen = cremad_clips(per_class_train, per_class_test)
    for i, (clip, label) in enumerate(chosen["train"] + chosen["test"]):
        write_wav(root / "AudioWAV" / f"{clip}.wav", tone(1.5, 16000, 200 + 100 * label, i), 16000)
        write_video(root / "VideoFlash" / f"{clip}.flv", codec="flv", seconds=2.2, value=label)
    return chosen


def kinetics_clips(
    per_class_train: int, per_class_test: int, labels: Sequence[int]
) -> dict[str, list[tuple[str, int]]]:
    """The first clip ids of the given labels in the official Kinetics-Sounds lists."""
    chosen: dict[str, list[tuple[str, int]]] = {}
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        rows, picked = kinetics_sounds.split_list(split), []
        for label in labels:
            picked += [(r[0], r[2]) for r in rows if r[2] == label][:count]
        chosen[split] = picked
    return chosen


def make_kinetics_release(
    root: Path,
    labels: Sequence[int] = (0, 1, 2),
    per_class_train: int = 3,
    per_class_test: int = 1,
    class_names: dict[int, str] | None = None,
) -> dict[str, list[tuple[str, int]]]:
    """A tiny Kinetics-Sounds folder: ``<class name>/<YouTubeID>_<start>_<end>.mp4`` (MPEG-4 video
    with AAC audio, 2.2 s), test clips named in the long form from their short list ids."""
    chosen = kinetics_clips(per_class_train, per_class_test, labels)
    names = class_names or {label: f"class {label}" for label in labels}
    for i, (clip, label) in enumerate(chosen["train"] + chosen["test"]):
        stem = kinetics_sounds.long_clip_id(clip)
        write_video(
            root / names[label] / f"{stem}.mp4",
            codec="mpeg4",
            seconds=2.2,
            value=label,
            audio=tone(2.2, 16000, 300 + 50 * label, i),
        )
    return chosen


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
