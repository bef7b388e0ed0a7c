"""Datasets, the generic ``.npz`` format, ``prepare`` steps and corruptions."""

from robustfusion.data.base import (
    DatasetInfo,
    DataSplits,
    ModalityInfo,
    MultimodalDataset,
    TensorMultimodalDataset,
    collate,
)
from robustfusion.data.loading import load_dataset

__all__ = [
    "DataSplits",
    "DatasetInfo",
    "ModalityInfo",
    "MultimodalDataset",
    "TensorMultimodalDataset",
    "collate",
    "load_dataset",
]
