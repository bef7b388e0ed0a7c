"""Build the data and the model a :class:`TrainConfig` describes (shared by training and loading)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from robustfusion.data import DatasetInfo, DataSplits, load_dataset
from robustfusion.encoders.base import default_encoder_name
from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.model import MultimodalModel
from robustfusion.registry import ENCODERS, FUSIONS, METHODS, check_options
from robustfusion.training.config import TrainConfig


def load_data(config: TrainConfig) -> DataSplits:
    """The splits of ``config.dataset`` (or ``config.data``), split with ``config.seed``."""
    return load_dataset(
        config.dataset,
        data=Path(config.data) if config.data is not None else None,
        root=Path(config.data_root) if config.data_root is not None else None,
        seed=config.seed,
        **config.dataset_options,
    )


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
    spatial = wants_spatial(config.method)
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
    encoders = build_encoders(config, info)
    spec = MethodSpec(
        modalities=info.modality_names,
        feature_dims={
            m: int(getattr(e, "out_dim", config.feature_dim)) for m, e in encoders.items()
        },
        num_classes=info.num_classes,
        fusion=config.fusion,
        hidden_dim=config.hidden_dim,
        input_shapes={m.name: tuple(m.shape) for m in info.modalities},
        input_kinds={m.name: m.kind for m in info.modalities},
        input_scales={m.name: m.intensity_scale for m in info.modalities},
        seed=config.seed,
    )
    method = build_method(config.method, spec, config.method_options)
    return MultimodalModel(encoders, method)
