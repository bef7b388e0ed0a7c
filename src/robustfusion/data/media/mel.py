"""Log-mel spectrograms in plain PyTorch: an HTK mel filterbank and ``torch.stft``."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hz_to_mel(hz: Tensor) -> Tensor:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters equally spaced on the mel scale (peak 1)."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(
        torch.linspace(
            float(hz_to_mel(torch.tensor(f_min))),
            float(hz_to_mel(torch.tensor(f_max))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def log_mel(
    waveforms: Tensor,
    sample_rate: int,
    n_fft: int = 512,
    hop: int = 320,
    n_mels: int = 40,
    eps: float = 1e-6,
) -> Tensor:
    """``log(mel power + eps)`` of ``[B, T]`` waveforms: ``[B, n_mels, 1 + T // hop]``.

    Hann window, centred frames (reflect padding), power spectrum ``|STFT|^2``.
    """
    window = torch.hann_window(n_fft, dtype=waveforms.dtype, device=waveforms.device)
    spec = torch.stft(
        waveforms, n_fft=n_fft, hop_length=hop, window=window, center=True, return_complex=True
    )
    power = spec.real.pow(2) + spec.imag.pow(2)
    bank = mel_filterbank(n_fft, n_mels, sample_rate).to(power)
    return torch.log(torch.einsum("mf,bft->bmt", bank, power) + eps)


def frames_for(num_samples: int, hop: int) -> int:
    """Number of centred STFT frames of a signal of ``num_samples``."""
    return 1 + math.floor(num_samples / hop)
