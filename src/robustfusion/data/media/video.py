"""Video decoding with PyAV (the optional extra ``video``): frames at a fixed rate, and audio.

Frames are sampled as ``ffmpeg -vf fps=1`` does in OGM-GE's preprocessing: for each time
``k / fps`` (k = 0, 1, ...) within the clip, the first decoded frame whose timestamp reaches it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from robustfusion.errors import ConfigError, DataError


def require_av() -> ModuleType:
    """Import PyAV or raise a one-line error saying how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError(
            "video decoding needs PyAV: pip install 'robustfusion[video]' (or pip install av)"
        ) from None
    return av


def extract_frames(
    path: Path, fps: float = 1.0, max_frames: int | None = None, fix: str = ""
) -> list[Image.Image]:
    """Decode ``path`` and return RGB frames sampled at ``fps`` frames per second.

    A clip shorter than ``1 / fps`` still gives its first frame. ``fix`` is appended to errors.
    """
    if fps <= 0:
        raise ConfigError(f"frame rate must be positive, got {fps}")
    av = require_av()
    frames: list[Image.Image] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"video file {path} has no video stream{fix}")
            stream = container.streams.video[0]
            next_time, start = 0.0, 0.0
            for index, frame in enumerate(container.decode(stream)):
                if frame.time is not None:
                    time = float(frame.time)
                else:
                    time = index / float(stream.average_rate or 25)
                if index == 0:
                    # Timestamps may not start at 0: measure from the first frame.
                    start = time
                if time - start + 1e-6 >= next_time:
                    frames.append(frame.to_image().convert("RGB"))
                    next_time += 1.0 / fps
                    if max_frames is not None and len(frames) >= max_frames:
                        break
    except FileNotFoundError:
        raise DataError(f"video file {path} is missing{fix}") from None
    except av.error.FFmpegError as exc:
        raise DataError(f"video file {path} cannot be decoded ({exc}){fix}") from None
    if not frames:
        raise DataError(f"video file {path} holds no decodable frames{fix}")
    return frames


def extract_audio(path: Path, fix: str = "") -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` as mono float32 in [-1, 1] and its sample rate."""
    av = require_av()
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataError(f"clip {path} has no audio stream{fix}")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate)
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except FileNotFoundError:
        raise DataError(f"clip {path} is missing{fix}") from None
    except av.error.FFmpegError as exc:
        raise DataError(f"clip {path} has undecodable audio ({exc}){fix}") from None
    if not chunks:
        raise DataError(f"clip {path} has an empty audio stream{fix}")
    return np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0), rate
