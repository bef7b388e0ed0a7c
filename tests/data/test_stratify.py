"""The seeded stratified split."""

from __future__ import annotations

import numpy as np

from robustfusion.data.stratify import stratified_split


def test_partition_fractions_and_determinism() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    a = stratified_split(labels, seed=5)
    b = stratified_split(labels, seed=5)
    c = stratified_split(labels, seed=6)
    everything = np.concatenate([a["train"], a["val"], a["test"]])
    assert np.array_equal(np.sort(everything), np.arange(labels.size))
    for name in ("train", "val", "test"):
        assert np.array_equal(a[name], b[name])
        assert np.all(np.diff(a[name]) > 0)
    assert not np.array_equal(a["train"], c["train"])
    assert np.bincount(labels[a["train"]]).tolist() == [6, 12, 18, 25]
    assert np.bincount(labels[a["val"]]).tolist() == [2, 4, 6, 8]
