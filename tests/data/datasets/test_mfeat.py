"""The shipped mfeat dataset: shapes, train-only standardisation, stratification, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustfusion.data import load_dataset
from robustfusion.data.datasets.mfeat import VIEWS, asset_path
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import DataError

DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}


def test_asset_matches_the_uci_description() -> None:
    with np.load(asset_path(), allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted((*VIEWS, "y"))
        assert np.bincount(archive["y"]).tolist() == [200] * 10
        for view, dim in DIMS.items():
            assert archive[view].shape == (2000, dim)
            assert archive[view].dtype == np.float32


def test_shapes_and_stratified_split() -> None:
    splits = load_dataset("mfeat", seed=0)
    assert splits.info.modality_names == VIEWS
    assert {m.name: m.shape for m in splits.info.modalities} == {v: (d,) for v, d in DIMS.items()}
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1200, 400, 400)
    for split, per_class in ((splits.train, 120), (splits.val, 40), (splits.test, 40)):
        assert torch.bincount(split.targets(), minlength=10).tolist() == [per_class] * 10


def test_standardised_with_train_statistics_only() -> None:
    splits = load_dataset("mfeat", seed=0)
    raw = np.load(asset_path(), allow_pickle=False)["fou"].astype(np.float64)
    train = splits.train.arrays["fou"].double()
    assert torch.allclose(train.mean(0), torch.zeros(76, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        train.std(0, unbiased=False), torch.ones(76, dtype=torch.float64), atol=1e-3
    )
    # the test split is transformed with the training statistics, so it is not exactly standard
    test_mean = splits.test.arrays["fou"].double().mean(0)
    assert float(test_mean.abs().max()) > 1e-2
    # exactly the train-fitted transform, applied to the raw test rows
    labels = np.load(asset_path(), allow_pickle=False)["y"]
    idx = stratified_split(labels, seed=0)
    mean, std = raw[idx["train"]].mean(0), raw[idx["train"]].std(0)
    expected = (raw[idx["test"]] - mean) / std
    assert np.allclose(splits.test.arrays["fou"].numpy(), expected, atol=1e-4)


def test_split_is_deterministic_per_seed() -> None:
    a = load_dataset("mfeat", seed=3)
    b = load_dataset("mfeat", seed=3)
    c = load_dataset("mfeat", seed=4)
    assert torch.equal(a.test.arrays["kar"], b.test.arrays["kar"])
    assert torch.equal(a.train.targets(), b.train.targets())
    assert not torch.equal(a.test.arrays["kar"], c.test.arrays["kar"])


def test_view_subset_and_unknown_view() -> None:
    splits = load_dataset("mfeat", views="fou,mor")
    assert splits.info.modality_names == ("fou", "mor")
    with pytest.raises(DataError, match="unknown mfeat view 'abc'"):
        load_dataset("mfeat", views=["fou", "abc"])
