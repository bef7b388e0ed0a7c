"""The shipped mfeat dataset: shapes, train-only standardisation, stratification, determinism,
and TMC's protocol (its split, MinMax scaling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.data import load_dataset
from robustfusion.data.datasets.mfeat import VIEWS, asset_path, tmc_test_rows
from robustfusion.data.stratify import stratified_split
from robustfusion.errors import ConfigError, DataError

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


def test_tmc_split_is_theirs_1600_400_with_val_from_train() -> None:
    test_rows = tmc_test_rows()
    labels = np.load(asset_path(), allow_pickle=False)["y"]
    assert test_rows.size == 400 and np.unique(test_rows).size == 400
    assert np.bincount(labels[test_rows]).tolist() == [40] * 10
    splits = load_dataset("mfeat", seed=1, split="tmc")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1440, 160, 400)
    assert torch.bincount(splits.val.targets(), minlength=10).tolist() == [16] * 10
    other = load_dataset("mfeat", seed=2, split="tmc", val_fraction=0.2, scaling="minmax")
    again = load_dataset("mfeat", seed=1, split="tmc", scaling="minmax")
    assert len(other.val) == 320
    # the test split is fixed (and, scaled on itself, identical whatever the seed)
    assert torch.equal(again.test.arrays["mor"], other.test.arrays["mor"])
    # val_fraction=0 is TMC's own setting: all 1600 rows train, validation reuses them
    whole = load_dataset("mfeat", seed=1, split="tmc", val_fraction=0)
    assert (len(whole.train), len(whole.val), len(whole.test)) == (1600, 1600, 400)
    assert torch.equal(whole.train.arrays["fou"], whole.val.arrays["fou"])
    with pytest.raises(ConfigError, match="val_fraction applies to split=tmc only"):
        load_dataset("mfeat", val_fraction=0.1)
    with pytest.raises(ConfigError, match="unknown split 'x'"):
        load_dataset("mfeat", split="x")


def test_minmax_scaling_fits_the_training_pool_and_test_separately_as_tmc() -> None:
    raw = np.load(asset_path(), allow_pickle=False)["zer"].astype(np.float64)
    splits = load_dataset("mfeat", seed=0, split="tmc", scaling="minmax")
    test = splits.test.arrays["zer"].double().numpy()
    rows = tmc_test_rows()  # the test split keeps the asset's row order
    lo, hi = raw[rows].min(0), raw[rows].max(0)
    assert np.allclose(test, (raw[rows] - lo) / (hi - lo), atol=1e-5)
    pool = torch.cat([splits.train.arrays["zer"], splits.val.arrays["zer"]])
    assert float(pool.min()) == 0.0 and float(pool.max()) == 1.0
    assert float(test.min()) == 0.0 and float(test.max()) == 1.0
    trained = load_dataset("mfeat", seed=0, scaling="minmax_train")
    train = trained.train.arrays["zer"]
    assert torch.allclose(train.amin(0), torch.zeros(47)) and torch.allclose(
        train.amax(0), torch.ones(47)
    )
    test_range = trained.test.arrays["zer"]
    assert float(test_range.min()) < 0.0 or float(test_range.max()) > 1.0  # train statistics
    with pytest.raises(ConfigError, match="unknown scaling 'z'"):
        load_dataset("mfeat", scaling="z")


def test_shipped_tmc_protocol_config_holds_tmc_hyperparameters() -> None:
    from importlib import resources

    from robustfusion.training.config import TrainConfig

    path = resources.files("robustfusion").joinpath("configs", "tmc_protocol.yaml")
    config = TrainConfig.from_yaml(Path(str(path)))
    assert (config.dataset, config.method) == ("mfeat", "tmc")
    assert (config.epochs, config.batch_size, config.optimizer) == (500, 200, "adam")
    assert (config.lr, config.weight_decay) == (3e-4, 1e-5)
    assert config.method_options["tmc"] == {"annealing_epochs": 50, "evidence": "softplus"}
    assert config.encoders == dict.fromkeys(VIEWS, "identity")
    splits = load_dataset(config.dataset, seed=0, **config.dataset_options)
    assert (len(splits.train), len(splits.test)) == (1600, 400)
    assert float(splits.test.arrays["kar"].min()) == 0.0
