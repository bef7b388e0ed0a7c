"""AV-digits: scikit-learn's 8x8 digit images paired by label with spoken digits synthesised by
espeak-ng, on the model of AV-MNIST. The audio is synthesised speech, not recordings.

This module loads the cache that ``robustfusion prepare avdigits``
(:mod:`robustfusion.data.prepare.avdigits`, which describes the build) writes to
``$ROBUSTFUSION_DATA/avdigits``. Loading standardises each modality with a scalar mean and std of
the training split. ``intensity_scale``: the image's is ``1 / (255 * std)`` (the raw 0-16 range
is 255 units); the audio's is ``2 / std``, the stored change per unit of natural-log magnitude
``ln|X|`` (the log-mel holds ``ln`` of *power*, ``2 ln|X|``). The split, pairing and noise are
fixed when the cache is built (``prepare``'s ``seed``); ``load``'s ``seed`` does not change them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robustfusion.data.arrays import SPLIT_NAMES, splits_from_arrays
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.cache import dataset_root
from robustfusion.data.standardize import apply_standardizer, fit_standardizer
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS

NAME = "avdigits"
#: Bumped whenever the build changes; a cache of another version must be rebuilt.
#: 2: background-noise SNR drawn in [0, 20] dB instead of [-5, 15] (audio learnable in 30 epochs).
VERSION = 2
CACHE_FILE = "avdigits.npz"
PREPARE_COMMAND = "robustfusion prepare avdigits"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
N_FFT, HOP, N_MELS = 512, 320, 40


def cache_path(root: Path | None = None) -> Path:
    """The cache file: ``root/avdigits.npz`` (default ``$ROBUSTFUSION_DATA/avdigits``)."""
    return dataset_root(NAME, root) / CACHE_FILE


@DATASETS.register(
    NAME, "digit images + espeak-ng spoken digits with noise, 10 classes (needs prepare)"
)
def load(root: Path | None, seed: int) -> DataSplits:
    """Load the built cache from ``root`` (default ``$ROBUSTFUSION_DATA/avdigits``)."""
    path = cache_path(root)
    if not path.is_file():
        where = "" if root is None else f" --out {path.parent}"
        raise DataError(
            f"avdigits is not built in {path.parent}: run `{PREPARE_COMMAND}{where}` first "
            "(needs espeak-ng)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            version = int(archive["version"])
            if version != VERSION:
                raise DataError(
                    f"{path} was built by avdigits version {version}, this is {VERSION}: "
                    f"rebuild it with `{PREPARE_COMMAND} --option force=true`"
                )
            arrays = {k: archive[k] for k in ("image", "audio", "y", "split", "voice", "snr_db")}
            config = json.loads(str(archive["config"]))
    except DataError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise DataError(
            f"{path} is unreadable ({err}): rebuild it with `{PREPARE_COMMAND} --option force=true`"
        ) from err
    split_idx = {s: np.flatnonzero(arrays["split"] == s) for s in SPLIT_NAMES}
    train = split_idx["train"]
    inputs: dict[str, np.ndarray] = {}
    scales: dict[str, float] = {}
    for name in ("image", "audio"):
        mean, std = fit_standardizer(arrays[name][train], axis=None)
        inputs[name] = apply_standardizer(arrays[name], mean, std)
        scales[name] = float(std.reshape(()))
    voices = {
        s: sorted({v.split("+")[1] for v in arrays["voice"][split_idx[s]]}) for s in SPLIT_NAMES
    }
    info = DatasetInfo(
        name=NAME,
        modalities=(
            ModalityInfo(
                "image", tuple(inputs["image"].shape[1:]), "image", 1.0 / (255.0 * scales["image"])
            ),
            # ln(mel power) = 2 ln|X| (+ const): one ln|X| unit moves the raw value by 2
            ModalityInfo(
                "audio", tuple(inputs["audio"].shape[1:]), "spectrogram", 2.0 / scales["audio"]
            ),
        ),
        num_classes=10,
        class_names=DIGIT_WORDS,
        description="sklearn 8x8 digit images + espeak-ng synthesised spoken digits (held-out voices, background noise)",
        extra={"build": config, "voices": voices, "cache": str(path)},
    )
    return splits_from_arrays(inputs, arrays["y"], split_idx, info, standardize=())
