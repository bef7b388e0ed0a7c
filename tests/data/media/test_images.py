"""Image transforms of the literature: random resized crop + flip, resize, paired RGB-D crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustfusion.data.media.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    augment_train,
    load_image,
    paired_crop,
    random_resized_crop_box,
    resize_eval,
    to_tensor,
)
from robustfusion.errors import DataError


def test_random_resized_crop_boxes_stay_inside_and_respect_scale() -> None:
    torch.manual_seed(0)
    for _ in range(200):
        left, top, right, bottom = random_resized_crop_box(64, 48)
        assert 0 <= left < right <= 64 and 0 <= top < bottom <= 48
        area = (right - left) * (bottom - top) / (64 * 48)
        assert 0.06 <= area <= 1.0
    # A degenerate scale range falls back to the central crop.
    assert random_resized_crop_box(100, 10, scale=(2.0, 2.0)) == (43, 0, 56, 10)


def test_train_augmentation_is_seeded_and_eval_resize_is_fixed() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))
    torch.manual_seed(5)
    a = np.asarray(augment_train(image, 16))
    torch.manual_seed(5)
    b = np.asarray(augment_train(image, 16))
    assert a.shape == (16, 16, 3) and np.array_equal(a, b)
    assert np.array_equal(np.asarray(resize_eval(image, 16)), np.asarray(resize_eval(image, 16)))


def test_to_tensor_normalises_with_imagenet_statistics() -> None:
    image = Image.new("RGB", (4, 2), (255, 0, 128))
    t = to_tensor(image, IMAGENET_MEAN, IMAGENET_STD)
    assert t.shape == (3, 2, 4)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(t[:, 0, 0].numpy(), expected, rtol=1e-5)


def test_paired_crop_centre_and_sizes() -> None:
    ramp = np.tile(np.arange(32, dtype=np.uint8)[None, :] * 8, (32, 1))
    image = Image.fromarray(ramp)
    out = paired_crop([image, image], size=8, load_size=16, train=False)
    assert [im.size for im in out] == [(8, 8), (8, 8)]
    assert np.array_equal(np.asarray(out[0]), np.asarray(out[1]))


def test_load_image_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x\.png is missing: fix"):
        load_image(tmp_path / "x.png", fix=": fix")
    (tmp_path / "y.png").write_bytes(b"no image")
    with pytest.raises(DataError, match=r"y\.png is not a readable image"):
        load_image(tmp_path / "y.png")
