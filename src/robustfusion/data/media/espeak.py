"""Speech synthesis with the espeak-ng command-line tool (a Debian/Ubuntu/Homebrew package).

Used to build the ``avdigits`` dataset; the audio is synthesised speech, not recordings.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

from robustfusion.errors import DataError

INSTALL_HINT = (
    "espeak-ng is not installed: run `apt-get install espeak-ng` (Debian/Ubuntu) or "
    "`brew install espeak-ng` (macOS), then retry"
)


@dataclass(frozen=True)
class Utterance:
    """One synthesis request: ``text`` spoken by ``voice`` (``accent+variant``)."""

    text: str
    voice: str
    pitch: int = 50
    speed: int = 175


def espeak_binary() -> str:
    """Path of ``espeak-ng``, or a one-line :class:`DataError` saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError(INSTALL_HINT)
    return path


def _query(flag: str) -> str:
    """The text ``espeak-ng FLAG`` prints, run in :func:`synthesis_environment`."""
    return subprocess.run(
        [espeak_binary(), flag],
        capture_output=True,
        text=True,
        check=True,
        env=synthesis_environment(),
    ).stdout


def espeak_version() -> str:
    """The first line of ``espeak-ng --version`` (stored with what it synthesised)."""
    return " ".join(_query("--version").split("Data at:")[0].split())


def _list(kind: str) -> list[str]:
    """File names (column 5) of ``espeak-ng --voices=<kind>``, without the ``!v/`` prefix."""
    out = _query(f"--voices={kind}")
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            names.append(parts[4].removeprefix("!v/"))
    return names


def available_variants() -> set[str]:
    """Voice variants this espeak-ng installation has (``m3``, ``f2``, ``klatt``, ...)."""
    return set(_list("variant"))


def available_languages() -> set[str]:
    """Language codes (column 2) of the English voices of this installation."""
    out = _query("--voices=en")
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) >= 5}


def synthesis_environment() -> dict[str, str]:
    """The environment every espeak-ng call runs in: the caller's ``PATH`` and a fixed locale,
    nothing else (no ``ESPEAK_DATA_PATH``, no ``HOME`` with a private ``espeak-ng-data``), so
    that two calls, or two machines with the same package, read the same voice data."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}


def synthesize(utterance: Utterance) -> tuple[np.ndarray, int]:
    """Mono float32 waveform in [-1, 1] and its sample rate (espeak-ng writes 22.05 kHz).

    The WAV is read from espeak-ng's standard output (``--stdout``): no temporary file, so no
    file can be shared or left between calls.
    """
    command = [
        espeak_binary(),
        "-v",
        utterance.voice,
        "-p",
        str(utterance.pitch),
        "-s",
        str(utterance.speed),
        "--stdout",
        utterance.text,
    ]
    result = subprocess.run(command, capture_output=True, env=synthesis_environment())
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()[:200]
        raise DataError(f"espeak-ng failed for voice {utterance.voice!r}: {message}")
    try:
        with wave.open(io.BytesIO(result.stdout), "rb") as wav:
            rate, width = wav.getframerate(), wav.getsampwidth()
            channels = wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as error:
        raise DataError(
            f"espeak-ng wrote no readable WAV for voice {utterance.voice!r} ({error})"
        ) from None
    if width != 2:
        raise DataError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit PCM")
    samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    samples = samples.reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        raise DataError(f"espeak-ng produced no audio for voice {utterance.voice!r}")
    return samples, rate
