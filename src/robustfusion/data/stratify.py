"""Seeded stratified train/val/test split, the one split protocol of every built-in dataset."""

from __future__ import annotations

import numpy as np

from robustfusion.errors import DataError

#: Fractions of (train, val, test); the test split takes what rounding leaves.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)


def stratified_split(
    labels: np.ndarray, seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Split sample indices into ``train``, ``val``, ``test``, stratified by label.

    Protocol: ``rng = numpy.random.Generator(PCG64(seed))``; for each class in increasing label
    order, its indices (ascending) are permuted by ``rng.permutation``; the first
    ``round(f_train * n_c)`` go to train, the next ``round(f_val * n_c)`` to val, the rest to test.
    Each split's indices are returned sorted, so a sample's position within its split is stable.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {labels.shape}")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(
            f"split fractions {fractions} must be three non-negative numbers summing to 1"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {
        name: np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
        for name, chunks in parts.items()
    }
