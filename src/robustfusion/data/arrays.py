"""Turn in-memory numpy arrays (one per modality) into :class:`DataSplits`.

Shared by the generic ``npz`` format and the built-in datasets: index the splits, standardise
``vector`` modalities per feature with statistics of the present training samples only, zero the
inputs of absent modalities, and wrap each split as a :class:`TensorMultimodalDataset`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from robustfusion.data.base import DatasetInfo, DataSplits, TensorMultimodalDataset
from robustfusion.data.standardize import apply_standardizer, fit_standardizer
from robustfusion.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


def splits_from_arrays(
    arrays: Mapping[str, np.ndarray],
    labels: np.ndarray,
    split_indices: Mapping[str, np.ndarray],
    info: DatasetInfo,
    present: Mapping[str, np.ndarray] | None = None,
    standardize: tuple[str, ...] | None = None,
) -> DataSplits:
    """Build the three splits.

    Args:
        arrays: modality -> ``[N, ...]`` array (samples first), in ``info`` order.
        labels: ``[N]`` integer labels in ``0..num_classes-1``.
        split_indices: ``train``/``val``/``test`` -> sample indices.
        info: the dataset description (its modality order is kept).
        present: optional modality -> ``[N]`` bool; absent inputs are zeroed.
        standardize: modalities to standardise per feature on train; default every ``vector``.
    """
    n = int(labels.shape[0])
    presence = {
        m: (
            np.asarray(present[m], dtype=bool)
            if present is not None and m in present
            else np.ones(n, bool)
        )
        for m in info.modality_names
    }
    if standardize is None:
        standardize = tuple(m.name for m in info.modalities if m.kind == "vector")
    train_idx = np.asarray(split_indices["train"])
    prepared: dict[str, np.ndarray] = {}
    for name in info.modality_names:
        x = np.asarray(arrays[name])
        if name in standardize:
            fit_rows = train_idx[presence[name][train_idx]]
            if fit_rows.size == 0:
                raise DataError(
                    f"modality {name!r} is missing in every training sample: "
                    "it cannot be standardised; drop it or add training samples that have it"
                )
            mean, std = fit_standardizer(x[fit_rows], axis=0)
            x = apply_standardizer(x, mean, std)
        else:
            x = x.astype(np.float32, copy=False)
        x = np.where(presence[name].reshape((n,) + (1,) * (x.ndim - 1)), x, np.float32(0.0))
        prepared[name] = x.astype(np.float32, copy=False)
    datasets = {}
    for split in SPLIT_NAMES:
        idx = np.asarray(split_indices[split], dtype=np.int64)
        datasets[split] = TensorMultimodalDataset(
            {
                m: torch.from_numpy(np.ascontiguousarray(prepared[m][idx]))
                for m in info.modality_names
            },
            torch.from_numpy(np.asarray(labels[idx], dtype=np.int64)),
            {m: torch.from_numpy(presence[m][idx].copy()) for m in info.modality_names},
        )
    return DataSplits(
        train=datasets["train"], val=datasets["val"], test=datasets["test"], info=info
    )
