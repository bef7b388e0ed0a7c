"""Audio for the audio-visual datasets: WAV reading, resampling and the log-magnitude spectrogram.

The spectrogram follows OGM-GE / UDML for CREMA-D: mono audio at 22.05 kHz, tiled and cut to
3 s (66150 samples), clipped to [-1, 1], STFT with a Hann window, ``n_fft = 512``, ``hop = 353``,
centred with zero padding (librosa >= 0.10's default), then ``log(|STFT| + 1e-7)``: 257 x 188.
The authors use ``librosa.load`` (soxr resampling); here resampling is polyphase
(``scipy.signal.resample_poly``), so values differ from theirs by resampling error only.
"""

from __future__ import annotations

import math
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import Tensor

from robustfusion.errors import DataError


@dataclass(frozen=True)
class SpectrogramConfig:
    """Parameters of the log-magnitude spectrogram (defaults: CREMA-D as in OGM-GE/UDML)."""

    sample_rate: int = 22050
    seconds: float = 3.0
    n_fft: int = 512
    hop: int = 353

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.seconds))

    @property
    def shape(self) -> tuple[int, int]:
        """``(frequency bins, frames)`` of the spectrogram, e.g. ``(257, 188)``."""
        return self.n_fft // 2 + 1, 1 + self.num_samples // self.hop

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def read_wav(path: Path, fix: str = "") -> tuple[np.ndarray, int]:
    """Read a PCM WAV file as mono float32 in [-1, 1] and its sample rate (stdlib ``wave``).

    ``fix`` is appended to error messages (e.g. the ``prepare`` command that rebuilds the file).
    """
    try:
        with wave.open(str(path), "rb") as handle:
            channels = handle.getnchannels()
            width = handle.getsampwidth()
            rate = handle.getframerate()
            raw = handle.readframes(handle.getnframes())
    except FileNotFoundError:
        raise DataError(f"audio file {path} is missing{fix}") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"audio file {path} is not a readable PCM WAV ({exc}){fix}") from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise DataError(f"audio file {path} has {width}-byte samples; expected 8-32-bit PCM{fix}")
    if data.size == 0:
        raise DataError(f"audio file {path} holds no samples{fix}")
    return data.reshape(-1, channels).mean(axis=1), rate


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (Kaiser-windowed sinc) from ``orig_rate`` to ``target_rate`` Hz."""
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    g = math.gcd(int(orig_rate), int(target_rate))
    out = resample_poly(samples.astype(np.float64), target_rate // g, orig_rate // g)
    return out.astype(np.float32)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Tile a short clip and cut it to ``length`` samples (OGM-GE: ``np.tile(x, 3)[:3 * sr]``,
    generalised to repeat as often as needed)."""
    if samples.size == 0:
        raise DataError("cannot fit an empty audio clip to a length")
    reps = max(1, math.ceil(length / samples.size))
    return np.tile(samples, reps)[:length]


def log_spectrogram(samples: Tensor, n_fft: int = 512, hop: int = 353) -> Tensor:
    """``log(|STFT| + 1e-7)`` of a 1-D waveform clipped to [-1, 1]: ``[n_fft // 2 + 1, frames]``."""
    x = samples.float().clamp(-1.0, 1.0)
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    stft = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return torch.log(stft.abs() + 1e-7)


def spectrogram_from_waveform(
    samples: np.ndarray, rate: int, config: SpectrogramConfig = SpectrogramConfig()
) -> np.ndarray:
    """Resample, tile/cut and transform a mono waveform: float32 ``config.shape``."""
    audio = fit_length(resample(samples, rate, config.sample_rate), config.num_samples)
    spec = log_spectrogram(torch.from_numpy(audio), config.n_fft, config.hop)
    return spec.numpy().astype(np.float32)


def spectrogram_from_wav(
    path: Path, config: SpectrogramConfig = SpectrogramConfig(), fix: str = ""
) -> np.ndarray:
    """The log-magnitude spectrogram of a WAV file (see :func:`spectrogram_from_waveform`)."""
    samples, rate = read_wav(path, fix)
    return spectrogram_from_waveform(samples, rate, config)
