"""rgbd_scenes: shapes and units, fixed data whatever the seed, the void border, every class in
test, fusion beating either stream for a per-pixel Bayes classifier, option errors, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from robustfusion.data import load_dataset
from robustfusion.data.base import DataSplits, collate
from robustfusion.data.datasets.rgbd_scenes import CLASSES, CUES, RawScenes, load, render
from robustfusion.errors import ConfigError
from robustfusion.tasks import IGNORE_INDEX

K = len(CLASSES)


@pytest.fixture(scope="module")
def splits() -> DataSplits:
    return load_dataset("rgbd_scenes", seed=0)


def test_shapes_dtypes_and_info(splits: DataSplits) -> None:
    info = splits.info
    assert info.task == "segmentation"
    assert (info.num_classes, info.class_names) == (K, CLASSES)
    assert [(m.name, m.shape, m.kind) for m in info.modalities] == [
        ("rgb", (3, 64, 64), "image"),
        ("depth", (1, 64, 64), "map"),
    ]
    assert set(info.extra["cues"]) == set(CLASSES)
    assert info.modality("rgb").intensity_scale == pytest.approx(1 / np.mean(info.extra["rgb_std"]))
    assert info.modality("depth").intensity_scale == pytest.approx(1 / info.extra["depth_std"])
    for split, n in ((splits.train, 512), (splits.val, 128), (splits.test, 256)):
        assert split.arrays["rgb"].shape == (n, 3, 64, 64)
        assert split.arrays["depth"].shape == (n, 1, 64, 64)
        assert split.arrays["rgb"].dtype == split.arrays["depth"].dtype == torch.float32
        assert split.targets().shape == (n, 64, 64) and split.targets().dtype == torch.long
    # standardised with the training split's statistics (depth over its valid pixels)
    rgb = splits.train.arrays["rgb"].double()
    assert torch.allclose(rgb.mean((0, 2, 3)), torch.zeros(3, dtype=torch.double), atol=1e-4)
    assert torch.allclose(rgb.std((0, 2, 3)), torch.ones(3, dtype=torch.double), atol=1e-3)
    depth = splits.train.arrays["depth"]
    hole = -info.extra["depth_mean"] / info.extra["depth_std"]
    valid = depth[(depth - hole).abs() > 1e-4].double()
    assert abs(float(valid.mean())) < 1e-3 and abs(float(valid.std()) - 1) < 1e-3


def test_raw_values_are_in_natural_units() -> None:
    raw = render("train", 64, 32)
    assert raw.rgb.min() >= 0 and raw.rgb.max() <= 255
    assert np.array_equal(raw.rgb, np.round(raw.rgb))
    valid = raw.depth[raw.depth > 0]
    assert valid.min() > 0.5 and valid.max() < 10.0  # metres, within a Kinect's range
    assert 0.005 < float((raw.depth == 0).mean()) < 0.1  # a few sensor holes


def test_data_are_fixed_whatever_the_seed() -> None:
    options = {"size": 32, "train": 40, "val": 8, "test": 70}
    a = load_dataset("rgbd_scenes", seed=0, **options)
    b = load_dataset("rgbd_scenes", seed=0, **options)
    c = load_dataset("rgbd_scenes", seed=7, **options)
    for split in ("train", "val", "test"):
        for other in (b, c):
            x, y = getattr(a, split), getattr(other, split)
            assert torch.equal(x.targets(), y.targets())
            for m in ("rgb", "depth"):
                assert torch.equal(x.arrays[m], y.arrays[m])
    # a split's first images depend neither on its size nor on the other splits'
    short, long = render("test", 70, 32), render("test", 150, 32)
    for field in ("rgb", "depth", "labels"):
        assert np.array_equal(getattr(short, field), getattr(long, field)[:70])
    assert torch.equal(
        load_dataset("rgbd_scenes", seed=0, size=32, train=5, val=3, test=70).test.targets(),
        a.test.targets(),
    )
    assert not np.array_equal(render("train", 8, 32).labels, render("test", 8, 32).labels)
    assert not np.array_equal(render("test", 8, 32, 1).rgb, render("test", 8, 32).rgb)


def test_void_border_and_every_class_in_test(splits: DataSplits) -> None:
    target = splits.test.targets()
    values = set(torch.unique(target).tolist())
    assert values == set(range(K)) | {IGNORE_INDEX}
    border = max(1, 64 // 32)
    assert bool((target[:, :border] == IGNORE_INDEX).all())
    assert bool((target[:, :, -border:] == IGNORE_INDEX).all())
    assert not bool((target[:, border:-border, border:-border] == IGNORE_INDEX).any())
    counts = torch.bincount(target[target != IGNORE_INDEX], minlength=K)
    assert bool((counts > 0.01 * counts.sum()).all()), counts.tolist()


def _cells(raw: RawScenes, colour: bool, depth: bool) -> tuple[np.ndarray, int]:
    """Each pixel's cell in a grid over its raw features (8 levels per colour channel; a hole
    bin and 40 bins of 25 cm of depth)."""
    cell, n = np.zeros(raw.labels.shape, np.int64), 1
    if colour:
        q = np.minimum(raw.rgb // 32, 7).astype(np.int64)
        cell, n = q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], 512
    if depth:
        d = raw.depth[:, 0]
        q = np.where(d > 0, 1 + np.minimum(d / 0.25, 39).astype(np.int64), 0)
        cell, n = cell * 41 + q, n * 41
    return cell, n


def _per_pixel_bayes(train: RawScenes, test: RawScenes, colour: bool, depth: bool):
    """Pixel accuracy and per-class recall on ``test`` of the per-pixel Bayes rule (the most
    frequent training class of each feature cell): no context, no learning beyond counting."""
    cell, n = _cells(train, colour, depth)
    keep = train.labels != IGNORE_INDEX
    counts = np.bincount(cell[keep] * K + train.labels[keep], minlength=n * K).reshape(n, K)
    table = np.where(counts.sum(1) > 0, counts.argmax(1), counts.sum(0).argmax())
    cell, _ = _cells(test, colour, depth)
    keep = test.labels != IGNORE_INDEX
    predicted, truth = table[cell[keep]], test.labels[keep]
    recall = np.array([(predicted[truth == k] == k).mean() for k in range(K)])
    return float((predicted == truth).mean()), recall


def test_fusion_beats_either_stream_per_pixel() -> None:
    train, test = render("train", 512, 64), render("test", 256, 64)
    colour, colour_recall = _per_pixel_bayes(train, test, colour=True, depth=False)
    depth, depth_recall = _per_pixel_bayes(train, test, colour=False, depth=True)
    both, both_recall = _per_pixel_bayes(train, test, colour=True, depth=True)
    # measured: colour 0.807, depth 0.724, both 0.986
    assert both > 0.95
    assert colour < both - 0.1 and depth < both - 0.1, (colour, depth, both)
    assert bool((both_recall > 0.85).all()), both_recall
    for k, name in enumerate(CLASSES):
        if CUES[name] == "depth":  # invisible in colour
            assert colour_recall[k] < 0.1 and depth_recall[k] > 0.8, name
        if CUES[name] == "colour" and name != "floor":  # flat on the wall: invisible in depth
            assert depth_recall[k] < 0.1 and colour_recall[k] > 0.95, name
        if CUES[name] == "either":
            assert colour_recall[k] > 0.8 and depth_recall[k] > 0.8, name
    panel, box = CLASSES.index("panel"), CLASSES.index("box")
    assert min(colour_recall[panel], colour_recall[box]) < 0.1  # one paint for both
    assert depth_recall[panel] < 0.1  # flush with the wall


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"size": 15}, "size"),
        ({"size": 513}, "size"),
        ({"size": 32.5}, "size"),
        ({"size": True}, "size"),
        ({"size": "64"}, "size"),
        ({"train": 0}, "train"),
        ({"val": 0}, "val"),
        ({"test": -3}, "test"),
        ({"data_seed": -1}, "data_seed"),
    ],
)
def test_bad_options_raise_one_line(options: dict, words: str) -> None:
    for build in (
        lambda: load_dataset("rgbd_scenes", seed=0, **options),
        lambda: load(None, 0, **options),
    ):
        with pytest.raises(ConfigError, match=words) as error:
            build()
        assert "\n" not in str(error.value)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("rgbd_scenes", seed=0, image_size=32)


def test_other_sizes() -> None:
    small = load_dataset("rgbd_scenes", seed=0, size=16, train=4, val=2, test=3)
    assert small.test.arrays["rgb"].shape == (3, 3, 16, 16)
    assert small.test.targets().shape == (3, 16, 16)
    assert small.info.modality("depth").shape == (1, 16, 16)


def test_batches_through_collate_and_dataloader() -> None:
    splits = load_dataset("rgbd_scenes", seed=0, size=32, train=8, val=4, test=10)
    loader = DataLoader(splits.test, batch_size=4, shuffle=False, collate_fn=collate)
    batches = list(loader)
    assert [len(b.index) for b in batches] == [4, 4, 2]
    first = batches[0]
    assert first.target.shape == (4, 32, 32) and first.target.dtype == torch.long
    assert first.inputs["rgb"].shape == (4, 3, 32, 32)
    assert first.inputs["depth"].shape == (4, 1, 32, 32)
    assert bool(first.present["rgb"].all() and first.present["depth"].all())
    assert torch.equal(torch.cat([b.target for b in batches]), splits.test.targets())
    assert collate(first) is first
    item = splits.test[3]
    assert item["target"].shape == (32, 32)
    assert torch.equal(item["target"], batches[0].target[3])
    # per-sample items (a dataset without batched fetch) collate to the same batch
    stacked = collate([splits.test[i] for i in range(4)])
    assert stacked.target.shape == (4, 32, 32) and stacked.target.dtype == torch.long
    assert torch.equal(stacked.target, first.target)
    assert torch.equal(stacked.inputs["depth"], first.inputs["depth"])
