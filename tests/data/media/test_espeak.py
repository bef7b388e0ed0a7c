"""espeak-ng wrapper: a clear install hint when it is missing; real synthesis when present."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from robustfusion.data.media import espeak
from robustfusion.errors import DataError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; `make test` installs it as root)",
)


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    with pytest.raises(
        DataError, match=r"espeak-ng is not installed: run `apt-get install espeak-ng`"
    ):
        espeak.espeak_binary()


@needs_espeak
def test_synthesis_is_deterministic_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    u = espeak.Utterance("seven", "en-us+f3", pitch=60, speed=160)
    monkeypatch.chdir(tmp_path)
    a, rate = espeak.synthesize(u)
    b, _ = espeak.synthesize(u)
    assert rate == 22050
    assert 0.2 * rate < a.size < 1.5 * rate
    assert float(abs(a).max()) > 0.05
    assert np.array_equal(a, b)
    assert list(tmp_path.iterdir()) == []  # read from stdout: no file written anywhere
    assert {"m3", "f2"} <= espeak.available_variants()
    assert espeak.espeak_version().startswith("eSpeak NG")


@needs_espeak
def test_synthesis_ignores_the_callers_espeak_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's ESPEAK_DATA_PATH or HOME cannot change what the dataset is built from."""
    u = espeak.Utterance("four", "en-gb+m3", pitch=40, speed=150)
    reference, _ = espeak.synthesize(u)
    monkeypatch.setenv("ESPEAK_DATA_PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LC_ALL", "tr_TR.ISO-8859-9")
    again, _ = espeak.synthesize(u)
    assert np.array_equal(reference, again)
