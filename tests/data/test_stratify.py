"""The seeded stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from robustfusion.data.stratify import stratified_holdout, stratified_split
from robustfusion.errors import ConfigError


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


def test_fraction_per_class_disjoint_and_seeded() -> None:
    labels = [0] * 50 + [1] * 30 + [2] * 20
    keep, held = stratified_holdout(labels, 0.1, seed=0)
    assert sorted(keep + held) == list(range(100)) and not set(keep) & set(held)
    assert np.bincount(np.asarray(labels)[held]).tolist() == [5, 3, 2]
    assert stratified_holdout(labels, 0.1, seed=0) == (keep, held)
    assert stratified_holdout(labels, 0.1, seed=1)[1] != held


def test_tiny_sets_still_get_one_validation_sample() -> None:
    keep, held = stratified_holdout([0, 0, 1, 1, 2, 2], 0.1, seed=0)
    assert len(held) == 1 and len(keep) == 5
    assert stratified_holdout([0], 0.5, seed=0) == ([0], [])
    assert stratified_holdout([0, 1], 0.0, seed=0) == ([0, 1], [])
    with pytest.raises(ConfigError):
        stratified_holdout([0, 1], 1.0, seed=0)
