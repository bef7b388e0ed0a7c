"""Frame extraction at 1 fps and audio decoding through PyAV, on real encoded files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_av import tone, write_video

from robustfusion.data.media.video import extract_audio, extract_frames, require_av
from robustfusion.errors import ConfigError, DataError

pytest.importorskip("av")


def test_flv_frames_at_one_fps_are_the_frames_at_whole_seconds(tmp_path: Path) -> None:
    path = write_video(tmp_path / "c.flv", codec="flv", seconds=2.2, fps=5, value=1)
    frames = extract_frames(path, fps=1.0)
    assert len(frames) == 3  # t = 0, 1, 2 s
    assert frames[0].size == (48, 32) and frames[0].mode == "RGB"
    # The green channel encodes the source frame index (index * 30): frames 0, 5 and 10.
    greens = [float(np.asarray(f)[20:, 30:, 1].mean()) for f in frames]
    np.testing.assert_allclose(greens, [0, 150, 300 % 256], atol=12)


def test_max_frames_and_higher_rates(tmp_path: Path) -> None:
    path = write_video(tmp_path / "c.mp4", codec="mpeg4", seconds=2.0, fps=5)
    assert len(extract_frames(path, fps=1.0, max_frames=1)) == 1
    assert len(extract_frames(path, fps=5.0)) == 10
    with pytest.raises(ConfigError):
        extract_frames(path, fps=0)


def test_audio_track_is_decoded_mono_at_its_rate(tmp_path: Path) -> None:
    audio = tone(2.0, 16000, 500.0)
    path = write_video(tmp_path / "a.mp4", codec="mpeg4", seconds=2.0, audio=audio)
    samples, rate = extract_audio(path)
    assert rate == 16000
    assert abs(samples.size - audio.size) <= 2048  # AAC priming and padding
    spectrum = np.abs(np.fft.rfft(samples[:16000]))
    assert abs(int(np.argmax(spectrum)) - 500) <= 2


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.flv is missing"):
        extract_frames(tmp_path / "nothing.flv")
    bad = tmp_path / "bad.flv"
    bad.write_bytes(b"FLV garbage" * 10)
    with pytest.raises(DataError, match=r"bad\.flv"):
        extract_frames(bad)
    silent = write_video(tmp_path / "silent.mp4", codec="mpeg4", seconds=1.0)
    with pytest.raises(DataError, match="no audio stream"):
        extract_audio(silent)


def test_missing_pyav_is_a_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ConfigError, match=r"pip install 'robustfusion\[video\]'"):
        require_av()
