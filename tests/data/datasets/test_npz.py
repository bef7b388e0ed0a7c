"""The generic .npz format: happy path, presence arrays, kinds, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.data import load_dataset
from robustfusion.errors import DataError, RobustFusionError


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _base(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "y": np.repeat(np.arange(3), n // 3),
        "tab": rng.normal(5.0, 3.0, size=(n, 4)),
        "img": rng.uniform(0, 255, size=(n, 1, 6, 6)).astype(np.float32),
        "grid": rng.normal(size=(n, 5, 7)).astype(np.float32),
    }


def test_happy_path_kinds_split_and_standardisation(tmp_path: Path) -> None:
    splits = load_dataset(data=_write(tmp_path / "d.npz", **_base()))
    info = splits.info
    assert info.modality_names == ("tab", "img", "grid")
    kinds = {m.name: (m.kind, m.shape) for m in info.modalities}
    assert kinds == {"tab": ("vector", (4,)), "img": ("image", (1, 6, 6)), "grid": ("map", (5, 7))}
    assert info.modality("img").intensity_scale == 1.0  # values up to 255
    assert info.num_classes == 3
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36, 12, 12)
    assert torch.bincount(splits.train.targets()).tolist() == [12, 12, 12]
    train_tab = splits.train.arrays["tab"]
    assert torch.allclose(train_tab.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(train_tab.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert not torch.allclose(splits.test.arrays["tab"].mean(0), torch.zeros(4), atol=1e-3)
    # images are kept as stored
    assert float(splits.train.arrays["img"].max()) > 200


def test_explicit_split_and_presence(tmp_path: Path) -> None:
    arrays = _base()
    split = np.array(["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    present = np.ones(60, dtype=bool)
    present[[1, 45]] = False
    arrays["tab"][1] = np.nan  # absent entries may hold NaN
    path = _write(tmp_path / "d.npz", split=split, present_tab=present, **arrays)
    splits = load_dataset(data=path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 10)
    assert not bool(splits.train.present["tab"][1])
    assert torch.equal(splits.train.arrays["tab"][1], torch.zeros(4))
    assert not bool(splits.val.present["tab"][5])
    assert bool(splits.train.present["img"].all())
    assert torch.isfinite(splits.train.arrays["tab"]).all()


def test_labels_are_remapped_and_seed_changes_split(tmp_path: Path) -> None:
    arrays = _base()
    arrays["y"] = arrays["y"] * 10 + 7  # labels 7, 17, 27
    path = _write(tmp_path / "d.npz", **arrays)
    a = load_dataset(data=path, seed=0)
    b = load_dataset(data=path, seed=0)
    c = load_dataset(data=path, seed=1)
    assert a.info.class_names == ("7", "17", "27")
    assert set(a.train.targets().tolist()) == {0, 1, 2}
    assert torch.equal(a.train.arrays["grid"], b.train.arrays["grid"])
    assert not torch.equal(a.train.arrays["grid"], c.train.arrays["grid"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("y"), "no array 'y'"),
        (lambda a: a.__setitem__("tab", a["tab"][:-1]), "first axis must be the samples"),
        (lambda a: a.__setitem__("y", a["y"] + 0.5), "non-integer"),
        (lambda a: a["tab"].__setitem__((3, 2), np.nan), "NaN or Inf"),
        (lambda a: a["img"].__setitem__((4, 0, 0, 0), np.inf), "NaN or Inf"),
        (lambda a: a.__setitem__("split", np.array(["train"] * 59 + ["dev"])), "'dev'"),
        (
            lambda a: a.__setitem__("split", np.array(["train"] * 50 + ["test"] * 10)),
            "val split is empty",
        ),
        (lambda a: a.__setitem__("present_nope", np.ones(60, bool)), "present_nope"),
        (lambda a: a.__setitem__("present_tab", np.ones(59, bool)), "present_tab must have shape"),
        (lambda a: a.__setitem__("y", np.zeros(60, int)), "single class"),
        (lambda a: a.__setitem__("big", np.zeros((60, 1, 2, 3, 4))), "at most 3"),
    ],
)
def test_bad_inputs_raise_one_line_data_errors(tmp_path: Path, mutate, message: str) -> None:
    arrays = _base()
    mutate(arrays)
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(data=path)
    assert "\n" not in str(err.value)


def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    arrays = _base()
    arrays["obj"] = np.array([{"a": 1}] * 60, dtype=object)
    path = _write(tmp_path / "obj.npz", **arrays)
    with pytest.raises(DataError, match="Python objects"):
        load_dataset(data=path)


def test_sample_with_every_modality_missing(tmp_path: Path) -> None:
    arrays = _base()
    absent = np.ones(60, dtype=bool)
    absent[7] = False
    path = _write(
        tmp_path / "d.npz", present_tab=absent, present_img=absent, present_grid=absent, **arrays
    )
    with pytest.raises(DataError, match="sample 7 has every modality missing"):
        load_dataset(data=path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(data=tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(RobustFusionError, match="not a readable .npz"):
        load_dataset(data=junk)


def test_image_value_range_from_the_file_or_the_option(tmp_path: Path) -> None:
    arrays = _base()
    arrays["img"] = np.random.default_rng(1).integers(0, 17, (60, 1, 6, 6)).astype(np.float32)
    guessed = load_dataset(data=_write(tmp_path / "g.npz", **arrays)).info
    # sklearn digits (0-16): the guess is 0-255, and it is said so
    assert guessed.modality("img").intensity_scale == 1.0
    (note,) = guessed.extra["notes"]
    assert "'img'" in note and "guessed [0, 255]" in note and "maximum 16" in note
    assert "value_range=img:LO,HI" in note
    in_file = load_dataset(
        data=_write(tmp_path / "f.npz", range_img=np.array([0.0, 16.0]), **arrays)
    ).info
    assert in_file.modality("img").intensity_scale == pytest.approx(16.0 / 255.0)
    assert in_file.extra["notes"] == [] and in_file.extra["value_ranges"] == {"img": [0.0, 16.0]}
    assert "range_img" not in in_file.modality_names
    # the option overrides the file; several modalities are joined by ';'
    option = load_dataset(data=tmp_path / "f.npz", value_range="img:-1,1").info
    assert option.modality("img").intensity_scale == pytest.approx(2.0 / 255.0)
    assert "outside the given range [-1, 1]" in option.extra["notes"][0]
    mapping = load_dataset(data=tmp_path / "g.npz", value_range={"img": [0, 1]}).info
    assert mapping.modality("img").intensity_scale == pytest.approx(1.0 / 255.0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("img", "NAME:LO,HI"),
        ("img:0", "NAME:LO,HI"),
        ("img:5,1", "LO < HI"),
        ("tab:0,1", "only images"),
        ("nope:0,1", "no modality"),
    ],
)
def test_bad_value_ranges_are_one_line_errors(tmp_path: Path, option: str, message: str) -> None:
    path = _write(tmp_path / "d.npz", **_base())
    with pytest.raises(RobustFusionError, match=message) as info:
        load_dataset(data=path, value_range=option)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"range_img must hold two finite numbers"):
        load_dataset(data=_write(tmp_path / "b.npz", range_img=np.array([3.0, 1.0]), **_base()))
