"""``robustfusion prepare avdigits``: build AV-digits, scikit-learn's 8x8 digit images paired by
label with spoken digits synthesised by espeak-ng, on the model of AV-MNIST. The audio is
synthesised speech, not recordings.

Build (``robustfusion prepare avdigits``, cached in ``$ROBUSTFUSION_DATA/avdigits``):

* Images: ``sklearn.datasets.load_digits`` (1797 images, 0-16) scaled to [0, 1]; a seeded
  stratified 60/20/20 split (:func:`robustfusion.data.stratify.stratified_split`).
* Voices: ``accent+variant`` (e.g. ``en-gb-x-rp+f3``). The variants (the speaker's timbre,
  pitch range, formants) are split 60/20/20 between train, val and test with a seeded
  permutation, so test voices never occur in training; the eight English accents are shared.
  Each utterance also draws a pitch (``-p`` 25-75) and speed (``-s`` 120-230 words/min).
* Utterances: per split and digit word ("zero".."nine"), ``utterances`` (train) or
  ``utterances // 3`` (val, test) syntheses from that split's voice pool.
* Pairing: each image gets one utterance of its label from its split's pool (seeded), trimmed of
  silence, resampled to 16 kHz, placed at a random onset in a 1 s clip (cropped if longer), plus
  background noise (white noise through a random one-pole low-pass) at an SNR drawn uniformly in
  ``[snr_low, snr_high]`` dB (default ``[0, 20]`` since version 2; version 1 drew ``[-5, 15]``,
  where audio alone was barely learnable in 30 epochs: see docs/data.md). Clean synthetic speech
  is too easy (about 100 %); the noise and the held-out voices make it a benchmark.
* Audio input: log-mel spectrogram, 40 mels, n_fft 512, hop 320 (20 ms): ``[1, 40, 51]``.

The loader is :mod:`robustfusion.data.datasets.avdigits`.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import lfilter, resample_poly

from robustfusion.atomic import save_npz
from robustfusion.data.arrays import SPLIT_NAMES
from robustfusion.data.datasets.avdigits import (
    CLIP_SAMPLES,
    DIGIT_WORDS,
    HOP,
    N_FFT,
    N_MELS,
    NAME,
    SAMPLE_RATE,
    VERSION,
    cache_path,
)
from robustfusion.data.media.espeak import (
    Utterance,
    available_languages,
    available_variants,
    espeak_binary,
    espeak_version,
    synthesize,
)
from robustfusion.data.media.mel import log_mel
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import DataError
from robustfusion.registry import PREPARERS

#: English accents of espeak-ng 1.51 (language codes); those an installation lacks are skipped.
ACCENTS = (
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
#: Voice variants (espeak-ng's ``!v`` files); novelty voices (whisper, croak, robots) left out.
VARIANTS = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt6",
    "adam",
    "Alex",
    "Alicia",
    "Andy",
    "Annie",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "Gene",
    "grandma",
    "grandpa",
    "iven",
    "john",
    "linda",
    "max",
    "Michael",
    "Mike",
    "norbert",
    "paul",
    "pedro",
    "quincy",
    "shelby",
    "steph",
    "travis",
    "victor",
    "zac",
)
PITCH_RANGE = (25, 75)
SPEED_RANGE = (120, 230)


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines the built arrays (stored in the cache)."""

    seed: int = 0
    utterances: int = 60
    variants_per_split: int | None = None
    images_per_class: int | None = None
    snr_low: float = 0.0
    snr_high: float = 20.0
    version: int = VERSION

    def check(self) -> None:
        if self.utterances < 1:
            raise DataError(f"utterances must be >= 1, got {self.utterances}")
        if self.variants_per_split is not None and self.variants_per_split < 1:
            raise DataError(f"variants_per_split must be >= 1, got {self.variants_per_split}")
        if self.images_per_class is not None and self.images_per_class < 3:
            raise DataError(
                f"images_per_class must be >= 3 (one per split), got {self.images_per_class}"
            )
        if self.snr_low > self.snr_high:
            raise DataError(f"snr_low {self.snr_low} exceeds snr_high {self.snr_high}: swap them")


@PREPARERS.register(
    NAME, "build AV-digits (digit images + espeak-ng spoken digits); needs espeak-ng"
)
def prepare(
    raw: Path | None,
    out: Path | None,
    seed: int = 0,
    utterances: int = 60,
    variants_per_split: int | None = None,
    images_per_class: int | None = None,
    snr_low: float = 0.0,
    snr_high: float = 20.0,
    workers: int | None = None,
    force: bool = False,
    verbose: bool = True,
) -> Path:
    """Build the cache in ``out`` (default ``$ROBUSTFUSION_DATA/avdigits``) and return the folder.

    ``raw`` must be ``None`` (nothing is downloaded). An existing cache of the same version and
    options is kept unless ``force``. See the module docstring for the options.
    """
    if raw is not None:
        raise DataError("avdigits is synthesised and takes no raw data: omit --raw")
    config = BuildConfig(seed, utterances, variants_per_split, images_per_class, snr_low, snr_high)
    config.check()
    path = cache_path(out)
    if not force and path.is_file() and _stored_config(path) == asdict(config):
        return path.parent
    arrays = build(config, workers=workers, progress=verbose)
    if path.is_file() and _stored_config(path) == asdict(config):
        check_rebuild(path, arrays)  # a forced rebuild must reproduce what it replaces
    save_npz(path, arrays)
    return path.parent


def voice_pools(config: BuildConfig) -> dict[str, tuple[str, ...]]:
    """Disjoint variant pools of train/val/test (seeded permutation of the available variants)."""
    present = available_variants()
    variants = [v for v in VARIANTS if v in present]
    rng = np.random.default_rng([config.seed, 1])
    order = [variants[i] for i in rng.permutation(len(variants))]
    if config.variants_per_split is not None:
        k = config.variants_per_split
        counts = (k, k, k)
    else:
        n_val = n_test = int(round(0.2 * len(order)))
        counts = (len(order) - n_val - n_test, n_val, n_test)
    if min(counts) < 1 or sum(counts) > len(order):
        raise DataError(
            f"this espeak-ng has {len(order)} usable voice variants, too few for {counts} per split: "
            "lower variants_per_split"
        )
    starts = np.cumsum((0, *counts))
    return {s: tuple(order[starts[i] : starts[i + 1]]) for i, s in enumerate(SPLIT_NAMES)}


def build(config: BuildConfig, workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Synthesise and pair everything; return the arrays of the cache file."""
    espeak_binary()
    from sklearn.datasets import load_digits

    digits = load_digits()
    images_all = (digits.images.astype(np.float32) / 16.0)[:, None]
    labels_all = digits.target.astype(np.int64)
    keep = _subsample(labels_all, config)
    images, labels = images_all[keep], labels_all[keep]
    split_idx = stratified_split(labels, config.seed)
    split_of = np.empty(labels.size, dtype="<U5")
    for name in SPLIT_NAMES:
        split_of[split_idx[name]] = name
    pools = voice_pools(config)
    accents = [a for a in ACCENTS if a in available_languages()] or ["en"]
    requests = _utterance_requests(config, pools, accents)
    clips = _synthesize_all([u for _, _, u in requests], workers, progress)
    checksums = utterance_checksums(clips)
    by_key: dict[tuple[str, int], list[int]] = {}
    for k, (split, digit, _) in enumerate(requests):
        by_key.setdefault((split, digit), []).append(k)
    waves = np.zeros((labels.size, CLIP_SAMPLES), dtype=np.float32)
    snr = np.zeros(labels.size, dtype=np.float32)
    chosen = np.zeros(labels.size, dtype=np.int64)
    for i in range(labels.size):
        rng = np.random.default_rng([config.seed, 2, int(keep[i])])
        choices = by_key[(str(split_of[i]), int(labels[i]))]
        chosen[i] = choices[int(rng.integers(len(choices)))]
        snr[i] = rng.uniform(config.snr_low, config.snr_high)
        waves[i] = _mix(clips[chosen[i]], float(snr[i]), rng)
    audio = torch.cat(
        [
            log_mel(torch.from_numpy(waves[s : s + 256]), SAMPLE_RATE, N_FFT, HOP, N_MELS)
            for s in range(0, labels.size, 256)
        ]
    )
    voices = np.array([requests[k][2].voice for k in chosen])
    return {
        "image": images.astype(np.float32),
        "audio": audio[:, None].numpy().astype(np.float32),
        "y": labels,
        "split": split_of,
        "voice": voices,
        "pitch": np.array([requests[k][2].pitch for k in chosen], dtype=np.int16),
        "speed": np.array([requests[k][2].speed for k in chosen], dtype=np.int16),
        "snr_db": snr,
        "source_index": keep.astype(np.int64),
        "utterance_sha256": checksums,
        "espeak_version": np.array(espeak_version()),
        "version": np.array(VERSION),
        "config": np.array(json.dumps(asdict(config), sort_keys=True)),
    }


def _subsample(labels: np.ndarray, config: BuildConfig) -> np.ndarray:
    if config.images_per_class is None:
        return np.arange(labels.size)
    rng = np.random.default_rng([config.seed, 3])
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[: config.images_per_class]
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked))


def _utterance_requests(
    config: BuildConfig, pools: dict[str, tuple[str, ...]], accents: list[str]
) -> list[tuple[str, int, Utterance]]:
    rng = np.random.default_rng([config.seed, 4])
    requests = []
    for split in SPLIT_NAMES:
        count = config.utterances if split == "train" else max(1, config.utterances // 3)
        pool = pools[split]
        for digit, word in enumerate(DIGIT_WORDS):
            for j in range(count):
                accent = accents[int(rng.integers(len(accents)))]
                variant = pool[(j + digit) % len(pool)]  # every voice says every digit
                pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
                speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
                requests.append(
                    (split, digit, Utterance(word, f"{accent}+{variant}", pitch, speed))
                )
    return requests


#: Every this-many-th utterance is synthesised twice and the two waveforms compared: the build
#: checks that espeak-ng is deterministic here rather than trusting it.
PROBE_EVERY = 25


def _synthesize_all(
    utterances: list[Utterance], workers: int | None, progress: bool
) -> list[np.ndarray]:
    """16 kHz, silence-trimmed waveforms, synthesised on a thread pool (espeak-ng processes).

    Every :data:`PROBE_EVERY`-th utterance is synthesised a second time, concurrently with the
    others; a difference raises a :class:`DataError` (the cache would not be reproducible)."""
    from tqdm import tqdm

    def one(u: Utterance) -> np.ndarray:
        samples, rate = synthesize(u)
        return _trim(
            resample_poly(samples.astype(np.float64), SAMPLE_RATE, rate).astype(np.float32)
        )

    probes = list(range(0, len(utterances), PROBE_EVERY))
    n_workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = pool.map(one, [*utterances, *(utterances[i] for i in probes)])
        bar = tqdm(
            results,
            total=len(utterances) + len(probes),
            desc="avdigits: espeak-ng",
            disable=not progress,
        )
        clips = list(bar)
    for k, i in enumerate(probes):
        again = clips[len(utterances) + k]
        if not np.array_equal(clips[i], again):
            u = utterances[i]
            raise DataError(
                f"espeak-ng gave two different waveforms for {u.text!r} (voice {u.voice}, pitch "
                f"{u.pitch}, speed {u.speed}): its output is not deterministic on this machine, so "
                "the dataset would not be reproducible; check `espeak-ng --version` and that no "
                "other program changes its data files, then retry"
            )
    return clips[: len(utterances)]


def utterance_checksums(clips: list[np.ndarray]) -> np.ndarray:
    """SHA-256 of every synthesised waveform (hex), stored in the cache so that a rebuild can be
    compared with the build it replaces."""
    return np.array([hashlib.sha256(np.ascontiguousarray(c).tobytes()).hexdigest() for c in clips])


def check_rebuild(old: Path, arrays: dict[str, Any]) -> None:
    """Raise a :class:`DataError` when a rebuild with the same options synthesised other audio
    than the cache it replaces (whose checksums were stored by this version of the build)."""
    try:
        with np.load(old, allow_pickle=False) as archive:
            if "utterance_sha256" not in archive or "espeak_version" not in archive:
                return
            stored = archive["utterance_sha256"]
            version = str(archive["espeak_version"])
    except (OSError, ValueError):
        return
    if version != str(arrays["espeak_version"]) or stored.shape != arrays["utterance_sha256"].shape:
        return
    differ = np.flatnonzero(stored != arrays["utterance_sha256"])
    if differ.size:
        raise DataError(
            f"the rebuilt avdigits audio differs from the cached build for {differ.size} of "
            f"{stored.size} utterances (first: number {int(differ[0])}) with the same options and "
            f"{version}: espeak-ng is not deterministic here; the cache {old} was kept"
        )


def _trim(samples: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples


def _mix(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Place ``speech`` at a random onset in a 1 s clip and add coloured noise at ``snr_db``."""
    if speech.size > CLIP_SAMPLES:
        start = (speech.size - CLIP_SAMPLES) // 2
        speech = speech[start : start + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    onset = int(rng.integers(CLIP_SAMPLES - speech.size + 1))
    clip[onset : onset + speech.size] = speech
    power = float(np.mean(speech.astype(np.float64) ** 2)) + 1e-12
    pole = rng.uniform(0.0, 0.95)
    noise = lfilter([1.0], [1.0, -pole], rng.standard_normal(CLIP_SAMPLES))
    noise *= np.sqrt(power / 10 ** (snr_db / 10.0) / (np.mean(noise**2) + 1e-12))
    return (clip + noise).astype(np.float32)


def _stored_config(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive["config"]))
    except (OSError, ValueError, KeyError):
        return None
