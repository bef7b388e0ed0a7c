"""Per-feature standardisation fitted on the training split only."""

from __future__ import annotations

import numpy as np

#: Features whose training standard deviation is below this are only centred (divided by 1).
MIN_STD = 1e-8


def fit_standardizer(
    train: np.ndarray, axis: int | tuple[int, ...] = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``axis`` of the training array (float64, keepdims).

    Constant features get std 1 so that they map to 0 instead of dividing by zero.
    """
    data = np.asarray(train, dtype=np.float64)
    mean = data.mean(axis=axis, keepdims=True)
    std = data.std(axis=axis, keepdims=True)
    std = np.where(std < MIN_STD, 1.0, std)
    return mean, std


def apply_standardizer(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` as float32."""
    return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
