"""NYU Depth v2: preparation from a fake labelled release in the official MATLAB v7.3 layout
(HDF5, written with h5py) + splits.mat, QMF's paired-image layout, aligned RGB-D transforms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_av import write_png

from robustfusion.data import load_dataset
from robustfusion.data.datasets import nyudv2
from robustfusion.data.prepare import nyudv2 as nyudv2_prepare
from robustfusion.errors import ConfigError, DataError

SCENES = ["bedroom", "kitchen", "study", "bathroom", "bedroom", "basement", "office", "kitchen",
          "bedroom", "study", "kitchen", "office"]  # fmt: skip


def write_fake_release(raw: Path, width: int = 24, height: int = 16) -> None:
    """``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 stores it (arrays transposed, sceneTypes a
    cell of uint16 strings held by object references) and a v5 ``splits.mat`` (1-based)."""
    h5py = pytest.importorskip("h5py")
    from scipy.io import savemat

    raw.mkdir(parents=True, exist_ok=True)
    n = len(SCENES)
    rng = np.random.default_rng(0)
    with h5py.File(raw / nyudv2.LABELED_FILE, "w") as handle:
        images = rng.integers(0, 256, (n, 3, width, height), dtype=np.uint8)
        images[:, 0] = (np.arange(n) * 20)[:, None, None]  # red channel = 20 * (index - 1)
        handle["images"] = images
        depths = np.tile(
            np.linspace(0.5, 9.5, width, dtype=np.float32)[None, :, None], (n, 1, height)
        )
        handle["depths"] = depths
        refs = handle.create_dataset("sceneTypes", (1, n), dtype=h5py.ref_dtype)
        group = handle.create_group("#refs#")
        for i, scene in enumerate(SCENES):
            chars = group.create_dataset(
                f"s{i}", data=np.array([[ord(c)] for c in scene], np.uint16)
            )
            refs[0, i] = chars.ref
    train, test = np.arange(1, 9)[:, None], np.arange(9, 13)[:, None]
    savemat(raw / nyudv2.SPLITS_FILE, {"trainNdxs": train * 1.0, "testNdxs": test * 1.0})


def test_scene_classes() -> None:
    assert len(nyudv2.CLASSES) == 10 and nyudv2.CLASSES[-1] == "others"
    assert nyudv2.scene_class("kitchen") == "kitchen"
    assert nyudv2.scene_class("study") == "others"


def test_prepare_writes_qmf_paired_layout_and_loads(tmp_path: Path) -> None:
    write_fake_release(tmp_path / "raw")
    out = nyudv2_prepare.prepare(tmp_path / "raw", tmp_path / "nyud", verbose=False)
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert "train/bedroom/0001.png" in pngs and "train/others/0003.png" in pngs
    assert "test/others/0010.png" in pngs and len(pngs) == 12
    from PIL import Image

    both = np.asarray(Image.open(out / "train" / "kitchen" / "0002.png"))
    assert both.shape == (16, 48, 3)
    assert (both[:, :24, 0] == 20).all()  # RGB half: image 2's red channel
    depth = both[:, 24:, 0].astype(float)
    np.testing.assert_allclose(depth[0], np.round(np.linspace(0.5, 9.5, 24) / 10 * 255), atol=1)
    meta = json.loads((out / "meta.json").read_text())
    assert sum(meta["counts"]["train"].values()) == 8 and sum(meta["counts"]["test"].values()) == 4
    mtime = (out / "train" / "kitchen" / "0002.png").stat().st_mtime_ns
    nyudv2_prepare.prepare(tmp_path / "raw", out, verbose=False)  # resumable: nothing rewritten
    assert (out / "train" / "kitchen" / "0002.png").stat().st_mtime_ns == mtime

    (out / nyudv2.UNFINISHED).write_text("{}")  # as an interrupted run leaves it
    with pytest.raises(DataError, match=r"did not finish: run `robustfusion prepare nyudv2"):
        nyudv2.load(out, 0)
    nyudv2_prepare.prepare(tmp_path / "raw", out, verbose=False)
    assert not (out / nyudv2.UNFINISHED).exists()
    splits = load_dataset("nyudv2", root=out, seed=0, image_size=12)
    assert splits.info.modality_names == ("rgb", "depth")
    assert splits.info.extra["default_encoders"] == {"rgb": "resnet18", "depth": "resnet18"}
    assert len(splits.train) + len(splits.val) == 8 and len(splits.test) == 4
    assert len(splits.val) == 1
    item = splits.test[0]
    assert item["inputs"]["rgb"].shape == (3, 12, 12) and item["inputs"]["depth"].shape == (
        3,
        12,
        12,
    )
    assert splits.info.class_names[item["target"]] == "bedroom"  # image 9


def test_missing_h5py_or_files_give_one_line_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataError, match=r"nyu_depth_v2_labeled\.mat is missing"):
        nyudv2_prepare.prepare(tmp_path, tmp_path / "out", verbose=False)
    (tmp_path / nyudv2.LABELED_FILE).write_bytes(b"not hdf5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ConfigError, match=r"needs h5py: pip install"):
        nyudv2_prepare.prepare(tmp_path, tmp_path / "out", verbose=False)
    with pytest.raises(DataError, match=r"train is missing: run `robustfusion prepare nyudv2"):
        nyudv2.load(tmp_path / "none", 0)


def make_qmf_folder(root: Path, size: int = 20) -> None:
    """QMF's own release layout: RGB | depth side by side, class folders per split."""
    ramp = np.tile(np.linspace(0, 255, size).astype(np.uint8)[None, :], (size, 1))
    for split, count in (("train", 3), ("test", 1)):
        for label in ("bathroom", "office"):
            for i in range(count):
                rgb = np.stack([ramp, ramp, ramp], 2)
                depth = np.stack([ramp, ramp, ramp], 2)  # same ramp: the crops must agree
                write_png(root / split / label / f"{i}.png", np.concatenate([rgb, depth], 1))


def test_train_crop_and_flip_are_shared_by_rgb_and_depth(tmp_path: Path) -> None:
    make_qmf_folder(tmp_path / "qmf")
    splits = nyudv2.load(tmp_path / "qmf", 0, image_size=12)
    assert splits.info.class_names == ("bathroom", "office")
    flips = set()
    for seed in range(6):
        torch.manual_seed(seed)
        rgb, depth = splits.train.pair(0)
        assert torch.allclose(rgb[0], depth[0], atol=1e-5)  # same crop, same flip
        flips.add(bool(rgb[0, 0, 0] > rgb[0, 0, -1]))
    assert flips == {True, False}  # both orientations occur
    a, b = splits.test.pair(0), splits.test.pair(0)
    assert torch.equal(a[0], b[0])  # evaluation: centre crop, deterministic


def test_a_test_class_unknown_to_train_is_an_error(tmp_path: Path) -> None:
    make_qmf_folder(tmp_path / "qmf")
    write_png(tmp_path / "qmf" / "test" / "attic" / "0.png", np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"attic is not a class of the training split"):
        nyudv2.load(tmp_path / "qmf", 0)
