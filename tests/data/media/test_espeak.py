"""espeak-ng wrapper: a clear install hint when it is missing; real synthesis when present."""

from __future__ import annotations

import shutil
from pathlib import Path

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
def test_synthesis_is_deterministic_audio(tmp_path: Path) -> None:
    u = espeak.Utterance("seven", "en-us+f3", pitch=60, speed=160)
    a, rate = espeak.synthesize(u, tmp_path)
    b, _ = espeak.synthesize(u, tmp_path)
    assert rate == 22050
    assert 0.2 * rate < a.size < 1.5 * rate
    assert float(abs(a).max()) > 0.05
    assert (a == b).all()
    assert list(tmp_path.iterdir()) == []  # the temporary wav is removed
    assert {"m3", "f2"} <= espeak.available_variants()
