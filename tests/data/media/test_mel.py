"""The log-mel front end of avdigits."""

from __future__ import annotations

import math

import torch

from robustfusion.data.media.mel import frames_for, log_mel, mel_filterbank


def test_filterbank_shape_and_triangles() -> None:
    bank = mel_filterbank(512, 40, 16000)
    assert bank.shape == (40, 257)
    assert float(bank.max()) <= 1.0 and float(bank.min()) >= 0.0
    peaks = bank.argmax(dim=1)
    assert bool((peaks[1:] >= peaks[:-1]).all())  # centres increase with the filter index
    assert bool((bank.sum(dim=1) > 0).all())  # no empty filter at this resolution


def test_pure_tone_lands_in_the_matching_band() -> None:
    t = torch.arange(16000) / 16000.0
    low = log_mel(torch.sin(2 * math.pi * 300.0 * t)[None], 16000)
    high = log_mel(torch.sin(2 * math.pi * 4000.0 * t)[None], 16000)
    assert low.shape == (1, 40, frames_for(16000, 320)) == (1, 40, 51)
    band_low = int(low[0].mean(dim=1).argmax())
    band_high = int(high[0].mean(dim=1).argmax())
    assert band_low < 10 < 25 < band_high
