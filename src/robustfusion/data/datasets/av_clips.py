"""A lazy audio-visual clip dataset over a prepared folder (CREMA-D, Kinetics-Sounds).

Prepared layout (written by :mod:`robustfusion.data.prepare.av_clips`, OGM-GE's names)::

    ROOT/meta.json                       parameters, class names, counts, missing clips
    ROOT/index_{train,test}.csv          clip_id,label,frames of every prepared clip
    ROOT/Image-01-FPS/<clip>/frame_00001.jpg ...   frames at 1 fps
    ROOT/spectrograms/<clip>.npy         float32 log-magnitude spectrogram [257, 188]

Items: ``inputs = {"audio": [1, F, T], "visual": [3 * frames, size, size]}``. With more than one
frame the frames are stacked along the channel axis (a 9-channel image for 3 frames), because
encoders take ``(C, H, W)``; OGM-GE instead runs its 2-D ResNet on each frame and pools over time
(a deviation, documented in docs/datasets.md). Frames: training draws ``frames`` distinct frames
at random (sorted; OGM-GE's ``np.random.choice``) and applies random resized crop + flip;
evaluation takes evenly spaced frames and a plain resize, so evaluation is deterministic.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo, MultimodalDataset
from robustfusion.data.media.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTENSITY_SCALE,
    augment_train,
    load_image,
    resize_eval,
    to_tensor,
)
from robustfusion.data.stratify import stratified_holdout
from robustfusion.errors import ConfigError, DataError

MODALITIES = ("audio", "visual")
#: ``intensity_scale`` of the cached spectrograms: they hold ``ln|X|`` itself (not standardised).
LOG_MAGNITUDE_SCALE = 1.0


@dataclass(frozen=True)
class ClipEntry:
    """One prepared clip: its id, integer label and number of extracted frames."""

    clip: str
    label: int
    frames: int


def frame_dir_name(fps: int) -> str:
    """OGM-GE's frame folder name, ``Image-01-FPS`` for 1 fps."""
    return f"Image-{fps:02d}-FPS"


def frame_name(position: int, fmt: str) -> str:
    """File name of the ``position``-th frame (0-based), ffmpeg-style ``frame_00001.jpg``."""
    return f"frame_{position + 1:05d}.{fmt}"


def read_index(path: Path, fix: str) -> list[ClipEntry]:
    """Read ``index_<split>.csv`` (``clip_id,label,frames``)."""
    if not path.is_file():
        raise DataError(f"prepared index {path} is missing{fix}")
    entries: list[ClipEntry] = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if number == 1 and row[:1] == ["clip_id"]:
                continue
            try:
                clip, label, frames = row
                entries.append(ClipEntry(clip, int(label), int(frames)))
            except ValueError:
                raise DataError(
                    f"prepared index {path} line {number} is malformed ({','.join(row)!r}){fix}"
                ) from None
    return entries


def write_index_rows(entries: Sequence[ClipEntry]) -> str:
    """The text of an index file for ``entries``."""
    lines = ["clip_id,label,frames"] + [f"{e.clip},{e.label},{e.frames}" for e in entries]
    return "\n".join(lines) + "\n"


def select_frames(available: int, count: int, train: bool) -> list[int]:
    """Frame positions: ``count`` distinct random ones (sorted) in training, evenly spaced
    centres otherwise; repeats frames when fewer than ``count`` exist."""
    if available < 1:
        raise ValueError("a clip needs at least one frame")
    if train:
        if available >= count:
            picked = torch.randperm(available)[:count]
        else:
            picked = torch.randint(0, available, (count,))
        return sorted(int(i) for i in picked)
    return [min(available - 1, int((k + 0.5) * available / count)) for k in range(count)]


class AVClipDataset(MultimodalDataset):
    """Lazy dataset of prepared audio-visual clips.

    Args:
        root: the prepared folder.
        entries: the clips of this split.
        train: random frame choice and augmentation (``True``) or deterministic evaluation.
        image_size: side of the square visual input.
        frames: frames per sample (stacked along channels when > 1).
        fps: the frame rate the folder was prepared with.
        frame_format: ``jpg`` or ``png``.
        spectrogram_shape: expected ``(F, T)`` of the cached spectrograms.
        fix: appended to error messages (the ``prepare`` command that rebuilds the folder).
    """

    modalities = MODALITIES

    def __init__(
        self,
        root: Path,
        entries: Sequence[ClipEntry],
        *,
        train: bool,
        image_size: int,
        frames: int,
        fps: int,
        frame_format: str,
        spectrogram_shape: tuple[int, int],
        fix: str,
    ) -> None:
        self.root = Path(root)
        self.entries = list(entries)
        self.train = train
        self.image_size = int(image_size)
        self.frames = int(frames)
        self.frame_dir = self.root / frame_dir_name(fps)
        self.frame_format = frame_format
        self.spectrogram_shape = tuple(spectrogram_shape)
        self.fix = fix
        self.labels = torch.tensor([e.label for e in self.entries], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.entries)

    def targets(self) -> Tensor:
        return self.labels

    def audio(self, clip: str) -> Tensor:
        """The cached spectrogram of ``clip`` as ``[1, F, T]``."""
        path = self.root / "spectrograms" / f"{clip}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"spectrogram {path} is missing{self.fix}") from None
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"spectrogram {path} is malformed ({exc}){self.fix}") from None
        if tuple(array.shape) != self.spectrogram_shape or not np.isfinite(array).all():
            raise DataError(
                f"spectrogram {path} has shape {tuple(array.shape)} or non-finite values, expected "
                f"finite {self.spectrogram_shape}{self.fix}"
            )
        return torch.from_numpy(array.astype(np.float32, copy=False)).unsqueeze(0)

    def visual(self, entry: ClipEntry) -> Tensor:
        """``frames`` transformed frames of ``entry`` stacked along channels."""
        tensors = []
        for position in select_frames(entry.frames, self.frames, self.train):
            path = self.frame_dir / entry.clip / frame_name(position, self.frame_format)
            image = load_image(path, "RGB", self.fix)
            if self.train:
                image = augment_train(image, self.image_size)
            else:
                image = resize_eval(image, self.image_size)
            tensors.append(to_tensor(image, IMAGENET_MEAN, IMAGENET_STD))
        return torch.cat(tensors, dim=0)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        return {
            "inputs": {"audio": self.audio(entry.clip), "visual": self.visual(entry)},
            "present": {m: True for m in MODALITIES},
            "target": entry.label,
            "index": int(index),
        }


def read_meta(root: Path, dataset: str, fix: str) -> dict[str, Any]:
    """Read and check ``ROOT/meta.json`` of a prepared folder of ``dataset``."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise DataError(
            f"{root} is not a prepared {dataset} folder (no meta.json): run `robustfusion prepare "
            f"{dataset} --raw RAW --out {root}` and pass --data-root {root}"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is malformed ({exc}){fix}") from None
    if meta.get("dataset") != dataset or meta.get("format") != 1:
        raise DataError(
            f"{path} describes dataset {meta.get('dataset')!r} format {meta.get('format')!r}, "
            f"not {dataset!r} format 1{fix}"
        )
    return meta


def check_files(root: Path, entries: Sequence[ClipEntry], fps: int, fix: str) -> None:
    """Raise a :class:`DataError` naming the first clip whose prepared files are missing."""
    frame_root = Path(root) / frame_dir_name(fps)
    for entry in entries:
        spec = Path(root) / "spectrograms" / f"{entry.clip}.npy"
        if not spec.is_file():
            raise DataError(f"spectrogram {spec} is missing{fix}")
        if not (frame_root / entry.clip).is_dir():
            raise DataError(f"frame folder {frame_root / entry.clip} is missing{fix}")


def load_av_splits(
    root: Path,
    dataset: str,
    seed: int,
    *,
    image_size: int,
    frames: int,
    val_fraction: float,
    description: str,
) -> DataSplits:
    """The train/val/test splits of a prepared audio-visual folder.

    The validation split is drawn from the prepared training clips, stratified and seeded
    (:func:`robustfusion.data.stratify.stratified_holdout`); the test split is the official one.
    """
    root = Path(root)
    fix = (
        f": rebuild it with `robustfusion prepare {dataset} --raw RAW --out {root}` "
        "(resumable: it redoes only missing files, so delete a malformed one first)"
    )
    if image_size < 8 or frames < 1:
        raise ConfigError(
            f"image_size must be >= 8 and frames >= 1, got image_size={image_size}, frames={frames}"
        )
    meta = read_meta(root, dataset, fix)
    fps = int(meta["fps"])
    train_all = read_index(root / "index_train.csv", fix)
    test = read_index(root / "index_test.csv", fix)
    if not train_all or not test:
        raise DataError(
            f"{root} holds {len(train_all)} training and {len(test)} test clips; both must be "
            f"non-empty: check --raw, run `robustfusion prepare {dataset} --raw RAW --out {root}`"
        )
    check_files(root, train_all + test, fps, fix)
    keep, held = stratified_holdout([e.label for e in train_all], val_fraction, seed)
    spec_shape = (int(meta["spectrogram_shape"][0]), int(meta["spectrogram_shape"][1]))
    common: dict[str, Any] = dict(
        image_size=image_size,
        frames=frames,
        fps=fps,
        frame_format=str(meta["frame_format"]),
        spectrogram_shape=spec_shape,
        fix=fix,
    )
    classes = tuple(str(c) for c in meta["classes"])
    info = DatasetInfo(
        name=dataset,
        modalities=(
            # stored as log(|STFT| + 1e-7), unstandardised: one ln-magnitude unit is one unit
            ModalityInfo("audio", (1, *spec_shape), "spectrogram", LOG_MAGNITUDE_SCALE),
            ModalityInfo("visual", (3 * frames, image_size, image_size), "image", INTENSITY_SCALE),
        ),
        num_classes=len(classes),
        class_names=classes,
        description=description,
        extra={
            "default_encoders": {"audio": "resnet18", "visual": "resnet18"},
            "root": str(root),
            "frames": frames,
            "visual_layout": "frames stacked along channels" if frames > 1 else "one frame",
            "spectrogram": meta["spectrogram"],
            "split": f"official train/test lists; val = stratified {val_fraction:.0%} of train, "
            f"seed {seed}",
        },
    )
    return DataSplits(
        train=AVClipDataset(root, [train_all[i] for i in keep], train=True, **common),
        val=AVClipDataset(root, [train_all[i] for i in held], train=False, **common),
        test=AVClipDataset(root, test, train=False, **common),
        info=info,
    )
