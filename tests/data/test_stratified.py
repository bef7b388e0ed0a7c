"""The seeded stratified hold-out that draws validation from train."""

from __future__ import annotations

import numpy as np
import pytest

from robustfusion.data.stratified import stratified_holdout
from robustfusion.errors import ConfigError


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
