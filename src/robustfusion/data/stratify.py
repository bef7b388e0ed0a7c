"""Seeded stratified splits: train/val/test for the built-in datasets, and a validation hold-out
carved from a fixed train list (CREMA-D, Kinetics-Sounds, NYU Depth v2), never from test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustfusion.errors import ConfigError, DataError

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


def stratified_holdout(
    labels: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split positions ``0..N-1`` into ``(keep, held_out)`` with about ``fraction`` of every class
    held out (largest remainders, so the total is ``round(fraction * N)``; at least one sample
    when ``fraction > 0`` and ``N >= 2``). Both lists are sorted; equal seeds give equal splits.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction}")
    y = np.asarray(labels, dtype=np.int64)
    n = int(y.size)
    if fraction == 0.0 or n < 2:
        return list(range(n)), []
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    quotas = {int(c): fraction * int((y == c).sum()) for c in classes}
    take = {c: int(np.floor(q)) for c, q in quotas.items()}
    total = max(1, int(round(fraction * n)))
    # Hand the remaining places to the classes with the largest remainders (ties: class order).
    order = sorted(quotas, key=lambda c: (-(quotas[c] - take[c]), c))
    for c in order:
        if sum(take.values()) >= total:
            break
        if take[c] < int((y == c).sum()) - 1:
            take[c] += 1
    held: list[int] = []
    for c in classes:
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        held.extend(int(i) for i in members[: take[int(c)]])
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], sorted(held)
