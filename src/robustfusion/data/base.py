"""Dataset containers shared by every dataset: samples are dicts keyed by modality name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustfusion.errors import DataError
from robustfusion.tasks.base import Task
from robustfusion.types import Batch

#: Kinds of modality; corruptions and encoders use them (``blur`` needs 2-D maps, for example).
MODALITY_KINDS = ("vector", "image", "spectrogram", "timeseries", "map")


@dataclass(frozen=True)
class ModalityInfo:
    """One modality: its name, per-sample shape and kind.

    ``intensity_scale`` is the change of the stored value that one *raw unit* makes, so that noise
    can be given in the units the papers use: for images one 0-255 intensity unit
    (``1 / (255 * std)`` for standardised images); for spectrograms one unit of natural-log
    magnitude, ``ln|X|`` (``1 / std`` of the raw log-magnitude for standardised spectrograms;
    UDML's authors add their audio noise in these units); for maps one unit of the map's
    quantity (one metre for depth). ``None`` when unknown or meaningless. The ``gaussian``
    corruption reads it for images and maps (:attr:`raw_unit_scale`).
    """

    name: str
    shape: tuple[int, ...]
    kind: str = "vector"
    intensity_scale: float | None = None

    @property
    def raw_unit_scale(self) -> float | None:
        """Stored-value change per raw unit for corruptions whose severity is given in raw
        units (``gaussian``): images (one 0-255 intensity unit) and maps (their own unit, e.g.
        one metre of depth) with a known :attr:`intensity_scale`; ``None`` otherwise (severities
        are then in stored, standardised units)."""
        return self.intensity_scale if self.kind in ("image", "map") else None

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"unknown modality kind {self.kind!r}; choose one of {MODALITY_KINDS}")


@dataclass(frozen=True)
class DatasetInfo:
    """Everything a model needs to know about a dataset, and what a report says of it."""

    name: str
    modalities: tuple[ModalityInfo, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The registered task (:data:`robustfusion.tasks.TASKS`) its targets belong to:
    #: ``classification`` (one label per sample) or ``segmentation`` (one label per pixel,
    #: :data:`robustfusion.tasks.IGNORE_INDEX` where there is none).
    task: str = "classification"

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def modality(self, name: str) -> ModalityInfo:
        for info in self.modalities:
            if info.name == name:
                return info
        raise DataError(
            f"unknown modality {name!r}: this dataset has {', '.join(self.modality_names)}"
        )


class MultimodalDataset(Dataset):
    """A map-style dataset whose items are ``{"inputs": {m: Tensor}, "present": {m: bool},
    "target": int, "index": int}``; combine items into a :class:`Batch` with :func:`collate`."""

    modalities: tuple[str, ...]

    def targets(self) -> Tensor:
        """All labels as a ``LongTensor[N]`` (for stratification and metrics)."""
        raise NotImplementedError  # pragma: no cover - interface


class TensorMultimodalDataset(MultimodalDataset):
    """An in-memory dataset of one tensor per modality (first axis = samples).

    Args:
        arrays: modality name -> ``[N, ...]`` float tensor.
        target: ``[N]`` integer labels, or ``[N, H, W]`` label maps (segmentation).
        present: optional modality name -> ``[N]`` bool; default all present.
    """

    def __init__(
        self,
        arrays: Mapping[str, Tensor],
        target: Tensor,
        present: Mapping[str, Tensor] | None = None,
    ) -> None:
        if len(arrays) < 1:
            raise DataError("a dataset needs at least one modality array")
        n = int(target.shape[0])
        for name, array in arrays.items():
            if array.shape[0] != n:
                raise DataError(
                    f"modality {name!r} has {array.shape[0]} samples but the labels have {n}: "
                    "every array's first axis must be the sample axis"
                )
            if array.is_floating_point() and not bool(torch.isfinite(array).all()):
                raise DataError(
                    f"modality {name!r} contains NaN or Inf values: clean or impute them first"
                )
        self.modalities = tuple(arrays)
        self.arrays = {m: a.float() for m, a in arrays.items()}
        self.target = target.long()
        self.present = {
            m: (
                present[m].bool()
                if present is not None and m in present
                else torch.ones(n, dtype=torch.bool)
            )
            for m in self.modalities
        }
        if n and not bool(torch.stack(list(self.present.values()), 1).any(1).all()):
            raise DataError(
                "a sample has every modality missing: drop it or keep at least one modality"
            )

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "inputs": {m: a[index] for m, a in self.arrays.items()},
            "present": {m: bool(p[index]) for m, p in self.present.items()},
            "target": int(self.target[index]) if self.target.dim() == 1 else self.target[index],
            "index": int(index),
        }

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """Batched fetch (used by ``DataLoader``): one gather per modality instead of per sample."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return Batch(
            inputs={m: a[idx] for m, a in self.arrays.items()},
            present={m: p[idx] for m, p in self.present.items()},
            target=self.target[idx],
            index=idx,
        )

    def targets(self) -> Tensor:
        return self.target

    def subset(self, indices: Tensor) -> TensorMultimodalDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorMultimodalDataset(
            {m: a[idx] for m, a in self.arrays.items()},
            self.target[idx],
            {m: p[idx] for m, p in self.present.items()},
        )


def task_of_target(value: object) -> Task:
    """The registered task whose targets look like ``value`` (one sample's target)."""
    from robustfusion.registry import TASKS

    for entry in TASKS:
        if entry.factory.is_target(value):
            return entry.factory
    raise DataError(
        f"a sample's target {value!r} is neither a class index nor a label map: give an int "
        "label per sample (classification) or an [H, W] integer map (segmentation)"
    )


def collate(samples: Sequence[dict[str, Any]] | Batch) -> Batch:
    """Stack per-sample dicts into a :class:`Batch` (a :class:`Batch` passes through unchanged);
    the targets are batched by their task (:meth:`~robustfusion.tasks.base.Task.collate_targets`)."""
    if isinstance(samples, Batch):
        return samples
    if not samples:
        raise DataError("cannot collate an empty list of samples")
    modalities = tuple(samples[0]["inputs"])
    targets = [s["target"] for s in samples]
    return Batch(
        inputs={m: torch.stack([s["inputs"][m] for s in samples]) for m in modalities},
        present={m: torch.tensor([bool(s["present"][m]) for s in samples]) for m in modalities},
        target=task_of_target(targets[0]).collate_targets(targets),
        index=torch.tensor([int(s["index"]) for s in samples], dtype=torch.long),
    )


@dataclass
class DataSplits:
    """The train, validation and test splits of a dataset and its description."""

    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    info: DatasetInfo
