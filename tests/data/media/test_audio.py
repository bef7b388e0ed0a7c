"""WAV reading, resampling, tiling and the OGM-GE log-spectrogram (257 x 188 for CREMA-D)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_av import tone, write_wav

from robustfusion.data.media.audio import (
    SpectrogramConfig,
    fit_length,
    log_spectrogram,
    read_wav,
    resample,
    spectrogram_from_wav,
)
from robustfusion.errors import DataError


def test_config_shape_is_257_by_188_for_cremad() -> None:
    config = SpectrogramConfig()
    assert config.num_samples == 66150
    assert config.shape == (257, 188)
    assert SpectrogramConfig(seconds=10.0).shape == (257, 625)


def test_read_wav_16_bit_stereo_is_mono_mean(tmp_path: Path) -> None:
    samples = tone(0.1, 8000, 440.0)
    write_wav(tmp_path / "a.wav", samples, 8000, channels=2)
    data, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000
    assert data.dtype == np.float32 and data.shape == samples.shape
    np.testing.assert_allclose(data, np.clip(samples, -1, 1), atol=1e-4)


def test_read_wav_24_bit(tmp_path: Path) -> None:
    values = np.array([0, 1 << 22, -(1 << 22), (1 << 23) - 1, -(1 << 23)], dtype=np.int64)
    raw = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in values)
    with wave.open(str(tmp_path / "b.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(3)
        handle.setframerate(16000)
        handle.writeframes(raw)
    data, _ = read_wav(tmp_path / "b.wav")
    np.testing.assert_allclose(data, values / float(1 << 23), atol=1e-7)


def test_read_wav_errors_name_the_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.wav is missing: rerun"):
        read_wav(tmp_path / "missing.wav", ": rerun")
    bad = tmp_path / "bad.wav"
    bad.write_text("not a wav file")
    with pytest.raises(DataError, match=r"bad\.wav is not a readable PCM WAV"):
        read_wav(bad)


def test_resample_keeps_frequency_and_duration() -> None:
    x = tone(1.0, 16000, 440.0)
    y = resample(x, 16000, 22050)
    assert y.shape == (22050,)
    peak = np.argmax(np.abs(np.fft.rfft(y)))  # 1 Hz bins for a 1 s signal
    assert abs(peak - 440) <= 1
    assert resample(x, 16000, 16000) is not None and resample(x, 16000, 16000).shape == x.shape


def test_fit_length_tiles_short_clips_and_cuts_long_ones() -> None:
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 10), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(fit_length(x, 3), [0, 1, 2])
    with pytest.raises(DataError):
        fit_length(np.zeros(0, np.float32), 3)


def test_log_spectrogram_matches_a_numpy_stft() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 1.2, 5000).astype(np.float32)
    spec = log_spectrogram(torch.from_numpy(x), 512, 353).numpy()
    # Reference: centred frames with zero padding, periodic Hann window, |rfft|.
    clipped = np.clip(x, -1, 1).astype(np.float64)
    padded = np.pad(clipped, 256)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    frames = 1 + (padded.size - 512) // 353
    ref = np.stack(
        [np.abs(np.fft.rfft(padded[i * 353 : i * 353 + 512] * window)) for i in range(frames)], 1
    )
    assert spec.shape == ref.shape == (257, frames)
    np.testing.assert_allclose(spec, np.log(ref + 1e-7), rtol=1e-4, atol=1e-3)


def test_spectrogram_from_wav_has_the_cremad_shape_and_the_tone_peak(tmp_path: Path) -> None:
    write_wav(tmp_path / "t.wav", tone(1.5, 16000, 1000.0), 16000)
    spec = spectrogram_from_wav(tmp_path / "t.wav")
    assert spec.shape == (257, 188) and spec.dtype == np.float32
    assert np.isfinite(spec).all()
    assert int(np.argmax(spec.mean(axis=1))) == round(1000 / 22050 * 512)
