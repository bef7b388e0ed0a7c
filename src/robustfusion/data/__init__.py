"""Datasets, the generic ``.npz`` format, ``prepare`` steps and corruptions."""

from robustfusion.data.base import (
    DatasetInfo,
    DataSplits,
    ModalityInfo,
    MultimodalDataset,
    TensorMultimodalDataset,
    collate,
)

__all__ = [
    "DataSplits",
    "DatasetInfo",
    "ModalityInfo",
    "MultimodalDataset",
    "TensorMultimodalDataset",
    "collate",
]
