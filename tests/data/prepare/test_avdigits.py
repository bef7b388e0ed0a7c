"""avdigits: a tiny build in a temporary folder, held-out voices, cache handling, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.data import load_dataset
from robustfusion.data.media import espeak
from robustfusion.data.prepare import avdigits
from robustfusion.errors import DataError
from robustfusion.registry import PREPARERS

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; `make test` installs it as root)",
)
TINY = {"utterances": 2, "variants_per_split": 1, "images_per_class": 5, "workers": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path_factory.mktemp("avdigits")
    return PREPARERS.get("avdigits")(None, out, verbose=False, **TINY)


@needs_espeak
def test_tiny_build_shapes_and_standardisation(built: Path) -> None:
    splits = load_dataset("avdigits", root=built)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 10)
    assert splits.info.modality_names == ("image", "audio")
    image, audio = splits.info.modalities
    assert image.kind == "image" and image.shape == (1, 8, 8)
    assert audio.kind == "spectrogram" and audio.shape == (1, 40, 51)
    for split in (splits.train, splits.val, splits.test):
        assert torch.bincount(split.targets(), minlength=10).tolist() == [len(split) // 10] * 10
    train_img = splits.train.arrays["image"]
    assert (
        abs(float(train_img.mean())) < 1e-4 and abs(float(train_img.std(unbiased=False)) - 1) < 1e-3
    )
    # 16 raw units (one [0, 1] step) = 255 intensity units
    with np.load(built / "avdigits.npz", allow_pickle=False) as archive:
        train_std = float(archive["image"][archive["split"] == "train"].std())
    assert image.intensity_scale == pytest.approx(1.0 / (255.0 * train_std), rel=1e-4)
    # the log-mel holds ln(power) = 2 ln|X|: one ln-magnitude unit is 2 / std stored units
    with np.load(built / "avdigits.npz", allow_pickle=False) as archive:
        audio_std = float(archive["audio"][archive["split"] == "train"].astype(np.float64).std())
    assert audio.intensity_scale == pytest.approx(2.0 / audio_std, rel=1e-4)


@needs_espeak
def test_voices_are_held_out_between_splits(built: Path) -> None:
    with np.load(built / "avdigits.npz", allow_pickle=False) as archive:
        variants = {
            s: {v.split("+")[1] for v in archive["voice"][archive["split"] == s]}
            for s in ("train", "val", "test")
        }
        snr = archive["snr_db"]
    assert variants["train"] and variants["val"] and variants["test"]
    assert not variants["train"] & variants["test"]
    assert not variants["train"] & variants["val"]
    assert not variants["val"] & variants["test"]
    assert float(snr.min()) >= 0.0 and float(snr.max()) <= 20.0 and float(snr.std()) > 1.0
    info = load_dataset("avdigits", root=built).info
    assert {k: set(v) for k, v in info.extra["voices"].items()} == variants


@needs_espeak
def test_build_is_deterministic_and_cached(built: Path, tmp_path: Path) -> None:
    again = avdigits.prepare(None, tmp_path, verbose=False, **TINY)
    with np.load(built / "avdigits.npz") as a, np.load(again / "avdigits.npz") as b:
        for key in ("image", "audio", "y", "split", "voice"):
            assert np.array_equal(a[key], b[key]), key
    stamp = (again / "avdigits.npz").stat().st_mtime_ns
    avdigits.prepare(None, tmp_path, verbose=False, **TINY)  # same options: kept
    assert (again / "avdigits.npz").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_voice_pools_are_disjoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(avdigits, "available_variants", lambda: set(avdigits.VARIANTS))
    pools = avdigits.voice_pools(avdigits.BuildConfig(seed=3))
    sizes = [len(pools[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == len(avdigits.VARIANTS) and sizes[0] > sizes[1] > 0
    flat = [v for s in pools.values() for v in s]
    assert len(set(flat)) == len(flat)
    assert pools == avdigits.voice_pools(avdigits.BuildConfig(seed=3))
    assert pools != avdigits.voice_pools(avdigits.BuildConfig(seed=4))
    with pytest.raises(DataError, match="lower variants_per_split"):
        avdigits.voice_pools(avdigits.BuildConfig(variants_per_split=100))


def test_loading_without_a_cache_says_to_prepare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        DataError, match=f"run `robustfusion prepare avdigits --out {tmp_path}` first"
    ):
        load_dataset("avdigits", root=tmp_path)
    monkeypatch.setenv("ROBUSTFUSION_DATA", str(tmp_path / "home"))
    with pytest.raises(DataError, match="run `robustfusion prepare avdigits` first"):
        load_dataset("avdigits")


def test_prepare_without_espeak_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="espeak-ng is not installed: run `apt-get install"):
        avdigits.prepare(None, tmp_path, verbose=False, **TINY)
    with pytest.raises(DataError, match="omit --raw"):
        avdigits.prepare(tmp_path, tmp_path, verbose=False)


def test_other_version_must_be_rebuilt(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "avdigits.npz",
        version=np.array(avdigits.VERSION + 1),
        config=np.array(json.dumps({})),
    )
    with pytest.raises(DataError, match="force=true") as info:
        load_dataset("avdigits", root=tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'avdigits.npz'} was built by avdigits version")


def _fake_synthesis(jitter: bool) -> object:
    """A stand-in for espeak-ng: a tone per utterance, with a random sample when ``jitter``."""
    calls: list[int] = []

    def synthesize(u: espeak.Utterance) -> tuple[np.ndarray, int]:
        calls.append(1)
        t = np.arange(4000) / 22050.0
        wave = 0.5 * np.sin(2 * np.pi * (100 + u.pitch) * t).astype(np.float32)
        if jitter:  # a different sample every call
            wave[100] += 1e-3 * len(calls)
        return wave, 22050

    return synthesize


def test_a_nondeterministic_synthesiser_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    utterances = [espeak.Utterance(w, "en+m1", 40 + i, 150) for i, w in enumerate(["one"] * 60)]
    monkeypatch.setattr(avdigits, "synthesize", _fake_synthesis(jitter=False))
    clips = avdigits._synthesize_all(utterances, workers=1, progress=False)
    assert len(clips) == 60
    monkeypatch.setattr(avdigits, "synthesize", _fake_synthesis(jitter=True))
    with pytest.raises(DataError, match="not deterministic on this machine"):
        avdigits._synthesize_all(utterances, workers=1, progress=False)


def test_a_rebuild_must_reproduce_the_cache_it_replaces(tmp_path: Path) -> None:
    clips = [np.full(10, i, dtype=np.float32) for i in range(4)]
    arrays = {
        "utterance_sha256": avdigits.utterance_checksums(clips),
        "espeak_version": np.array("eSpeak NG 1.51"),
    }
    np.savez(tmp_path / "old.npz", **arrays)
    avdigits.check_rebuild(tmp_path / "old.npz", arrays)  # the same audio: accepted
    clips[2] = clips[2] + 1e-6
    changed = {**arrays, "utterance_sha256": avdigits.utterance_checksums(clips)}
    with pytest.raises(
        DataError, match=r"differs from the cached build for 1 of 4 utterances \(first: number 2\)"
    ):
        avdigits.check_rebuild(tmp_path / "old.npz", changed)
    other = {**changed, "espeak_version": np.array("eSpeak NG 1.52")}
    avdigits.check_rebuild(tmp_path / "old.npz", other)  # another espeak-ng: not comparable
