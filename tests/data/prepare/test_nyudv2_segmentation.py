"""NYU Depth v2, 40-class segmentation: the shipped split and mapping, preparation through the
CLI from a fake labelled release in the official MATLAB v7.3 (HDF5) layout with all 1449 images
at a tiny size, resumability, one-line errors, and loading."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.cli import main
from robustfusion.data import load_dataset
from robustfusion.data.datasets import nyudv2 as nyudv2_scenes
from robustfusion.data.datasets import nyudv2_segmentation as nyudv2
from robustfusion.data.prepare import nyudv2 as nyudv2_prepare
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS, PREPARERS
from robustfusion.tasks import IGNORE_INDEX

h5py = pytest.importorskip("h5py")

WIDTH, HEIGHT = 8, 6  # the release is 640 x 480, stored [N, C, W, H] (MATLAB's order reversed)
N = nyudv2.NUM_IMAGES

CLASSES_40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip


def fake_arrays() -> dict[str, np.ndarray]:
    """The release's datasets at ``WIDTH x HEIGHT``, in h5py's view of MATLAB's order."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 3, WIDTH, HEIGHT), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(N) % 256  # pixel (row 0, col 0) red = (number - 1) % 256
    depths = rng.uniform(0.5, 9.5, (N, WIDTH, HEIGHT)).astype(np.float32)
    raw_depths = depths.copy()
    raw_depths[:, ::3, ::2] = 0.0  # the sensor's holes
    labels = rng.integers(0, 895, (N, WIDTH, HEIGHT)).astype(np.uint16)
    labels[:, 0, :] = 0  # void: the first column
    labels[:, 1, 0] = 894  # the largest raw id (torah -> otherprop)
    labels[:, 2, 0] = 21  # wall
    return {"images": images, "depths": depths, "rawDepths": raw_depths, "labels": labels}


def write_fake_release(raw: Path, arrays: dict[str, np.ndarray]) -> None:
    """``nyu_depth_v2_labeled.mat`` as HDF5 with the release's dataset names and layout."""
    raw.mkdir(parents=True, exist_ok=True)
    with h5py.File(raw / nyudv2_scenes.LABELED_FILE, "w") as handle:
        for name, array in arrays.items():
            handle.create_dataset(name, data=array, chunks=(1, *array.shape[1:]))


def write_splits_mat(path: Path, train: list[int], test: list[int]) -> None:
    from scipy.io import savemat

    column = lambda v: np.asarray(v, np.uint16)[:, None]  # noqa: E731
    savemat(path, {"trainNdxs": column(train), "testNdxs": column(test)})


def cli(*args: str) -> int:
    return main(["prepare", "nyudv2", *args])


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = fake_arrays()
    raw = tmp_path_factory.mktemp("nyu") / "raw"
    write_fake_release(raw, arrays)
    return raw, arrays


def test_shipped_split_mapping_and_class_names() -> None:
    split = nyudv2.shipped_split()
    assert len(split["train"]) == 795 and len(split["test"]) == 654
    assert sorted(split["train"] + split["test"]) == list(range(1, N + 1))
    assert split["train"][:3] == (3, 4, 5) and split["test"][:3] == (1, 2, 9)
    mapping = nyudv2.shipped_class_mapping()
    assert mapping.shape == (894,) and set(mapping.tolist()) == set(range(1, 41))
    # raw ids (NYU's `names`): 1 book -> otherprop, 3 cabinet, 4 ceiling, 11 floor, 21 wall
    assert [int(mapping[i - 1]) for i in (1, 3, 4, 11, 21, 894)] == [40, 3, 22, 2, 1, 40]
    assert nyudv2.segmentation_classes() == CLASSES_40
    lookup = nyudv2.label_lookup(mapping)
    assert lookup[0] == IGNORE_INDEX and lookup[21] == 0 and lookup[894] == 39


def test_provenance_lists_the_sha256_of_every_shipped_file() -> None:
    folder = resources.files("robustfusion.data").joinpath("splits", "nyudv2")
    text = folder.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    for name in ("train.txt", "test.txt", "class_mapping40.csv", "classes40.txt"):
        digest = hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()
        assert re.search(rf"`{re.escape(name)}`.*{digest}", text), name


def test_prepare_through_the_cli_maps_labels_and_resumes(
    release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw, arrays = release
    out = tmp_path / "seg"
    assert cli("--raw", str(raw), "--out", str(out), "--task", "segmentation") == 0
    assert capsys.readouterr().out.strip() == str(out)
    split = nyudv2.shipped_split()
    lookup = nyudv2.label_lookup(nyudv2.shipped_class_mapping())
    for name, count in (("train", 795), ("test", 654)):
        index = np.load(out / f"{name}_index.npy", allow_pickle=False)
        rgb = np.load(out / f"{name}_rgb.npy", allow_pickle=False)
        depth = np.load(out / f"{name}_depth.npy", allow_pickle=False)
        labels = np.load(out / f"{name}_labels.npy", allow_pickle=False)
        assert index.tolist() == list(split[name]) and len(index) == count
        assert rgb.shape == (count, 3, HEIGHT, WIDTH) and rgb.dtype == np.uint8
        assert depth.shape == labels.shape == (count, HEIGHT, WIDTH)
        assert depth.dtype == np.float16 and labels.dtype == np.uint8
        rows = np.asarray(index) - 1
        np.testing.assert_array_equal(rgb, arrays["images"][rows].transpose(0, 1, 3, 2))
        np.testing.assert_allclose(  # metres, float16 (relative precision 2^-11)
            depth.astype(np.float32), arrays["depths"][rows].transpose(0, 2, 1), rtol=1e-3
        )
        np.testing.assert_array_equal(labels, lookup[arrays["labels"][rows].transpose(0, 2, 1)])
        assert (labels[:, :, 0] == IGNORE_INDEX).all()  # void -> 255
        assert (labels[:, 0, 1] == 39).all() and (labels[:, 0, 2] == 0).all()  # 894, 21
        assert set(np.unique(labels).tolist()) <= set(range(40)) | {IGNORE_INDEX}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"train": 795, "test": 654} and meta["size"] == [HEIGHT, WIDTH]
    assert meta["task"] == "segmentation" and meta["depth"] == "inpainted"
    train_rows = np.asarray(split["train"]) - 1
    assert meta["void_pixels"]["train"] == int((arrays["labels"][train_rows] == 0).sum())
    assert sum(meta["class_pixels"]["test"]) + meta["void_pixels"]["test"] == 654 * HEIGHT * WIDTH
    assert not (out / nyudv2.UNFINISHED).exists()
    assert not list(out.glob(".*.tmp*"))

    # resumable: nothing is rewritten; a deleted array alone is rebuilt, byte for byte
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    before = (out / "test_labels.npy").read_bytes()
    (out / "test_labels.npy").unlink()
    assert cli("--raw", str(raw), "--out", str(out), "--option", "task=segmentation") == 0
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert {k for k in stamps if after[k] != stamps[k]} == {"test_labels.npy"}
    assert (out / "test_labels.npy").read_bytes() == before


def test_raw_depth_and_settings_are_recorded(
    release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw, arrays = release
    out = nyudv2_prepare.prepare(raw, tmp_path / "seg", task="segmentation", depth="raw")
    depth = np.load(out / "test_depth.npy", allow_pickle=False)
    rows = np.asarray(nyudv2.shipped_split()["test"]) - 1
    expected = arrays["rawDepths"][rows].transpose(0, 2, 1)
    np.testing.assert_allclose(depth.astype(np.float32), expected, rtol=1e-3)
    assert (depth[:, ::2, ::3] == 0).all()  # the holes stay 0
    # another depth into the same folder is refused (exit 2, one line)
    capsys.readouterr()
    assert cli("--raw", str(raw), "--out", str(out), "--option", "task=segmentation") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was prepared with depth='raw' (now 'inpainted')" in err
    splits = load_dataset("nyudv2_segmentation", root=out, seed=0, size="6x8")
    assert splits.info.extra["depth"] == "raw"
    assert (splits.test.arrays["depth"][:, 0, ::2, ::3] == 0).all()  # missing -> 0


def test_user_files_are_checked_against_the_shipped_ones(
    release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from scipy.io import savemat

    source, arrays = release
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / nyudv2_scenes.LABELED_FILE).symlink_to(source / nyudv2_scenes.LABELED_FILE)
    split = nyudv2.shipped_split()
    mapping = nyudv2.shipped_class_mapping()
    write_splits_mat(raw / nyudv2_scenes.SPLITS_FILE, list(split["train"]), list(split["test"]))
    savemat(raw / nyudv2.MAPPING_FILE, {"mapClass": mapping[None, :]})
    out = tmp_path / "agree"
    assert cli("--raw", str(raw), "--out", str(out), "--option", "task=segmentation") == 0
    capsys.readouterr()

    args = ("--raw", str(raw), "--out", str(tmp_path / "x"), "--option", "task=segmentation")
    changed = mapping.copy()
    changed[0] = 1  # book -> wall: not Gupta et al.'s mapping
    savemat(raw / nyudv2.MAPPING_FILE, {"mapClass": changed[None, :]})
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "classMapping40.mat differs from the 894 -> 40" in err
    assert "remove it to use the shipped mapping" in err
    savemat(raw / nyudv2.MAPPING_FILE, {"other": changed[None, :]})
    assert cli(*args) == 2
    assert "is not Gupta et al.'s classMapping40.mat" in capsys.readouterr().err
    (raw / nyudv2.MAPPING_FILE).unlink()  # absent: the shipped mapping is used

    write_splits_mat(raw / nyudv2_scenes.SPLITS_FILE, list(split["train"])[1:], list(split["test"]))
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "splits.mat differs from the standard 795/654 split" in err
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_missing_files_and_bad_options_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ("--out", str(tmp_path / "out"), "--option", "task=segmentation")
    cases = [
        (("--raw", str(tmp_path), *args), r"nyu_depth_v2_labeled\.mat is missing: download"),
        (args, r"needs the folder holding nyu_depth_v2_labeled\.mat"),
        (("--raw", str(tmp_path), "--option", "task=depth"), r"task accepts scene or segm"),
        (("--raw", str(tmp_path), *args, "--option", "depth=hha"), r"depth accepts inpainted"),
        (("--raw", str(tmp_path), "--option", "depth=raw"), r"depth applies to task=segm"),
    ]
    for argv, pattern in cases:
        assert cli(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and re.search(pattern, err), err
    wrong = tmp_path / "wrong"
    write_fake_release(wrong, {"images": np.zeros((4, 3, WIDTH, HEIGHT), np.uint8),
                               "depths": np.ones((4, WIDTH, HEIGHT), np.float32),
                               "labels": np.zeros((4, WIDTH, HEIGHT), np.uint16)})  # fmt: skip
    assert cli("--raw", str(wrong), *args) == 2
    assert "holds 4 images, the labelled release 1449" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_an_interrupted_run_is_flagged_then_resumed(
    release: tuple[Path, dict[str, np.ndarray]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    raw, _ = release
    out = tmp_path / "seg"
    real = nyudv2_prepare._image
    calls = {"n": 0}

    def dies_midway(kind: str, *args: object) -> np.ndarray:
        calls["n"] += 1
        if kind == "labels" and calls["n"] > 3 * 795 + 100:  # test's first label map
            raise KeyboardInterrupt
        return real(kind, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(nyudv2_prepare, "_image", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        nyudv2_prepare.prepare(raw, out, task="segmentation", verbose=False)
    assert (out / nyudv2.UNFINISHED).exists() and not (out / "meta.json").exists()
    assert (out / "train_labels.npy").is_file() and not (out / "test_labels.npy").exists()
    assert not list(out.glob(".*.tmp*"))  # no half-written array is left
    with pytest.raises(DataError, match=r"did not finish: run `robustfusion prepare nyudv2 --raw"):
        nyudv2.load_segmentation(out, 0)
    capsys.readouterr()
    run = ["train", "--dataset", "nyudv2_segmentation", "--data-root", str(out)]
    assert main([*run, "--out", str(tmp_path / "run")]) == 2  # the CLI: one line, exit 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"the preparation of {out} did not finish: run `robustfusion" in err
    assert "--task segmentation" in err
    monkeypatch.setattr(nyudv2_prepare, "_image", real)
    stamp = (out / "train_rgb.npy").stat().st_mtime_ns
    nyudv2_prepare.prepare(raw, out, task="segmentation", verbose=False)
    assert (out / "train_rgb.npy").stat().st_mtime_ns == stamp  # kept, not rewritten
    assert not (out / nyudv2.UNFINISHED).exists() and (out / "test_labels.npy").is_file()


def test_loading_gives_segmentation_splits(
    release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    raw, arrays = release
    out = nyudv2_prepare.prepare_segmentation(raw, tmp_path / "seg", verbose=False)
    assert "nyudv2_segmentation" in DATASETS.names() and "nyudv2_segmentation" in PREPARERS.names()
    splits = load_dataset("nyudv2_segmentation", root=out, seed=3, size=[4, 6])
    info = splits.info
    assert info.task == "segmentation" and info.num_classes == 40
    assert info.class_names == CLASSES_40 and info.modality_names == ("rgb", "depth")
    assert [m.shape for m in info.modalities] == [(3, 4, 6), (1, 4, 6)]
    assert [m.kind for m in info.modalities] == ["image", "map"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (715, 80, 654)
    item = splits.train[0]
    assert item["inputs"]["rgb"].shape == (3, 4, 6) and item["inputs"]["depth"].shape == (1, 4, 6)
    assert item["target"].shape == (4, 6) and item["target"].dtype == torch.long
    batch = splits.test.__getitems__([0, 1, 2])
    assert batch.target.shape == (3, 4, 6) and batch.inputs["depth"].dtype == torch.float32
    for part in (splits.train, splits.val, splits.test):
        values = set(torch.unique(part.target).tolist())
        assert IGNORE_INDEX in values and values <= set(range(40)) | {IGNORE_INDEX}
    # depth: metres standardised by the training images' statistics, recorded in extra
    extra = info.extra
    depth = splits.train.arrays["depth"]
    assert abs(float(depth.mean())) < 1e-3 and abs(float(depth.std()) - 1) < 1e-2
    assert 4.5 < extra["depth_mean"] < 5.5 and info.modalities[1].intensity_scale == pytest.approx(
        1 / extra["depth_std"]
    )
    # the validation images come from train, never test, and change with the seed
    other = load_dataset("nyudv2_segmentation", root=out, seed=4, size="4x6")
    assert not torch.equal(splits.val.target, other.val.target)
    # full stored size: rgb is ImageNet-normalised, and round-trips to the stored bytes
    full = load_dataset("nyudv2_segmentation", root=out, seed=0, size=f"{HEIGHT}x{WIDTH}")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    first = full.test[0]["inputs"]["rgb"] * std + mean
    expected = torch.from_numpy(arrays["images"][0].transpose(0, 2, 1).astype(np.float32)) / 255
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=0)  # test image 1
    labels = nyudv2.label_lookup(nyudv2.shipped_class_mapping())[arrays["labels"][0].T]
    assert torch.equal(full.test[0]["target"], torch.from_numpy(labels.astype(np.int64)))


def test_loading_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"meta\.json is missing: .* is not prepared: run `robust"):
        nyudv2.load_segmentation(tmp_path, 0)
    for size, pattern in (("240", r"size accepts HxW"), ("4x6x2", r"size accepts HxW"),
                          ((0, 4), r"at least 1x1")):  # fmt: skip
        with pytest.raises(ConfigError, match=pattern):
            nyudv2.load_segmentation(tmp_path, 0, size=size)
    (tmp_path / "meta.json").write_text(json.dumps({"task": "segmentation"}))
    with pytest.raises(DataError, match=r"train_rgb\.npy is missing: run `robustfusion prepare"):
        nyudv2.load_segmentation(tmp_path, 0)
    np.save(tmp_path / "train_rgb.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(DataError, match=r"holds float32 \(2, 3, 4\), not uint8 with 4 axes"):
        nyudv2.load_segmentation(tmp_path, 0)


def test_the_task_is_given_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--raw", str(tmp_path), "--task", "segmentation", "--option", "task=scene")
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--task NAME or --option task=NAME" in err[0]


def test_a_training_step_on_the_fake_release(
    release: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw, _ = release
    out = nyudv2_prepare.prepare_segmentation(raw, tmp_path / "seg", verbose=False)
    run = tmp_path / "run"
    args = ["train", "--dataset", "nyudv2_segmentation", "--data-root", str(out),
            "--dataset-option", "size=8x8", "--method", "udml", "--encoder", "rgb=cnn",
            "--encoder", "depth=cnn", "--encoder-option", "cnn.width=4", "--feature-dim", "8",
            "--hidden-dim", "8", "--epochs", "1", "--batch-size", "256", "--no-progress",
            "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("test mIoU ")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and len(metrics["per_class_iou"]) == 40
    assert metrics["num_samples"] == 654 and 0 <= metrics["miou"] <= 1
