"""Build the data and the model a :class:`TrainConfig` describes (shared by training and loading)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustfusion.data import (
    DatasetInfo,
    DataSplits,
    MultimodalDataset,
    TensorMultimodalDataset,
    collate,
    load_dataset,
)
from robustfusion.encoders.base import default_encoder_name
from robustfusion.errors import ConfigError, DataError
from robustfusion.methods.base import MethodSpec, build_method, check_task_support
from robustfusion.model import MultimodalModel
from robustfusion.modules.skip_decoder import SkipScores
from robustfusion.registry import ENCODERS, FUSIONS, METHODS, check_options
from robustfusion.tasks import task_of
from robustfusion.training.config import TrainConfig
from robustfusion.types import Batch

log = logging.getLogger("robustfusion")
_NOTES_SHOWN: set[str] = set()


def load_data(config: TrainConfig) -> DataSplits:
    """The splits of ``config.dataset`` (or ``config.data``), split with ``config.seed``, keeping
    only ``config.modalities`` when given (in the dataset's order).

    The dataset's notes (``info.extra["notes"]``, e.g. a guessed value range) are logged once per
    process on the ``robustfusion`` logger (the CLI prints them as ``note: ...``).
    """
    splits = load_dataset(
        config.dataset,
        data=Path(config.data) if config.data is not None else None,
        root=Path(config.data_root) if config.data_root is not None else None,
        seed=config.seed,
        **config.dataset_options,
    )
    if config.modalities is not None:
        splits = select_modalities(splits, config.modalities)
    for note in splits.info.extra.get("notes", ()) or ():
        if note not in _NOTES_SHOWN:
            _NOTES_SHOWN.add(note)
            log.warning("%s", note)
    return splits


def select_modalities(splits: DataSplits, names: Sequence[str]) -> DataSplits:
    """``splits`` with only the modalities ``names`` (kept in the dataset's order)."""
    available = splits.info.modality_names
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(
            f"--modalities names unknown modality {unknown[0]!r}: {splits.info.name} has "
            f"{','.join(available)}"
        )
    keep = tuple(m for m in available if m in set(names))
    if keep == available:
        return splits
    info = dataclasses.replace(
        splits.info, modalities=tuple(m for m in splits.info.modalities if m.name in keep)
    )
    return DataSplits(
        train=_subset(splits.train, keep, "train"),
        val=_subset(splits.val, keep, "val"),
        test=_subset(splits.test, keep, "test"),
        info=info,
    )


def _subset(dataset: MultimodalDataset, keep: tuple[str, ...], split: str) -> MultimodalDataset:
    if isinstance(dataset, TensorMultimodalDataset):
        try:
            return TensorMultimodalDataset(
                {m: dataset.arrays[m] for m in keep},
                dataset.target,
                {m: dataset.present[m] for m in keep},
            )
        except DataError as error:
            raise DataError(
                f"--modalities {','.join(keep)}: in the {split} split {error}; keep more modalities"
            ) from None
    return ModalitySubset(dataset, keep)


class ModalitySubset(MultimodalDataset):
    """A view of ``dataset`` with only the modalities ``keep`` (for datasets that are not
    in-memory tensors; samples whose kept modalities are all absent are not checked here)."""

    def __init__(self, dataset: MultimodalDataset, keep: tuple[str, ...]) -> None:
        self.dataset = dataset
        self.modalities = keep

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._keep(self.dataset[index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        fetch = getattr(self.dataset, "__getitems__", None)
        if fetch is None:
            return collate([self[i] for i in indices])
        batch = fetch(indices)
        if not isinstance(batch, Batch):  # a list of samples
            return collate([self._keep(item) for item in batch])
        keep = self.modalities
        return batch.replace(
            inputs={m: batch.inputs[m] for m in keep},
            present={m: batch.present[m] for m in keep},
            noise_level={m: v for m, v in batch.noise_level.items() if m in keep},
            corrupted={m: v for m, v in batch.corrupted.items() if m in keep},
        )

    def _keep(self, item: dict[str, Any]) -> dict[str, Any]:
        item = dict(item)
        for key in ("inputs", "present"):
            item[key] = {m: item[key][m] for m in self.modalities}
        return item

    def targets(self) -> torch.Tensor:
        return self.dataset.targets()


def wants_spatial(method: str) -> bool:
    """Whether any part of a (possibly composed ``outer+inner``) method wants feature maps."""
    return any(
        getattr(METHODS.get(part), "wants_spatial_features", False) for part in method.split("+")
    )


def build_encoders(config: TrainConfig, info: DatasetInfo) -> dict[str, nn.Module]:
    """One encoder per modality: ``config.encoders[m]``, else the dataset's default
    (``info.extra["default_encoders"]``, e.g. ResNet-18 for CREMA-D), else the default for its shape."""
    unknown = sorted(set(config.encoders) - set(info.modality_names))
    if unknown:
        raise ConfigError(
            f"--encoder names unknown modality {unknown[0]!r}: this dataset has "
            f"{', '.join(info.modality_names)}"
        )
    spatial = wants_spatial(config.method) or task_of(info.task).feature_kind == "map"
    encoders: dict[str, nn.Module] = {}
    for modality in info.modalities:
        name = (
            config.encoders.get(modality.name)
            or info.extra.get("default_encoders", {}).get(modality.name)
            or default_encoder_name(modality.shape)
        )
        options = dict(config.encoder_options.get(name, {}))
        factory = ENCODERS.get(name)
        options = {"out_dim": config.feature_dim, "spatial": spatial, **options}
        check_options(factory, options, f"encoder {name!r}", tuple(modality.shape))
        encoders[modality.name] = factory(tuple(modality.shape), **options)
    return encoders


def build_model(config: TrainConfig, info: DatasetInfo) -> MultimodalModel:
    """Encoders and method for ``info``'s modalities (call after seeding for reproducible init)."""
    FUSIONS.get(config.fusion)  # an unknown fusion name fails here, whatever the method
    task = task_of(info.task)
    check_task_support(config.method, task.name)
    input_shapes = {m.name: tuple(m.shape) for m in info.modalities}
    encoders = build_encoders(config, info)
    spec = MethodSpec(
        modalities=info.modality_names,
        feature_dims={
            m: int(getattr(e, "out_dim", config.feature_dim)) for m, e in encoders.items()
        },
        num_classes=info.num_classes,
        fusion=config.fusion,
        hidden_dim=config.hidden_dim,
        input_shapes=input_shapes,
        input_kinds={m.name: m.kind for m in info.modalities},
        input_scales={m.name: m.intensity_scale for m in info.modalities},
        seed=config.seed,
        task=task.name,
        target_shape=task.target_shape(input_shapes),
    )
    method = build_method(config.method, spec, config.method_options)
    return MultimodalModel(encoders, method, build_decoder(config, info, encoders))


def build_decoder(
    config: TrainConfig, info: DatasetInfo, encoders: dict[str, nn.Module]
) -> SkipScores | None:
    """The skip scores of ``--decoder skips`` (``None`` for ``head``); refused in one line on a
    task without maps or with an encoder that gives no finer maps."""
    if config.decoder == "head":
        return None
    task = task_of(info.task)
    if task.feature_kind != "map":
        raise ConfigError(
            f"--decoder {config.decoder} fuses finer feature maps, which {task.name} does not "
            "use: drop --decoder (it applies to segmentation datasets)"
        )
    for m, encoder in encoders.items():
        if not callable(getattr(encoder, "forward_pyramid", None)):
            raise ConfigError(
                f"--decoder {config.decoder}: the encoder of {m!r} ({type(encoder).__name__}) "
                "gives no finer maps; use cnn or resnet18, or --decoder head"
            )
    try:
        return SkipScores(
            {m: e.pyramid_channels for m, e in encoders.items()},
            {m: e.pyramid_strides for m, e in encoders.items()},
            info.num_classes,
            info.modality_names,
        )
    except ValueError as error:
        raise ConfigError(f"--decoder {config.decoder}: {error}, or use --decoder head") from None
