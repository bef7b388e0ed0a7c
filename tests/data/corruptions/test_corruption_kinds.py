"""Each corruption's own behaviour: units, values, smoothing, presence."""

from __future__ import annotations

import torch

from robustfusion.data.base import DatasetInfo
from robustfusion.data.corruptions import corrupt
from robustfusion.data.corruptions.blur import gaussian_kernel
from robustfusion.data.corruptions.salt_pepper import VECTOR_EXTREME
from robustfusion.types import Batch


def test_gaussian_is_in_0_255_units_on_images(batch: Batch, info: DatasetInfo) -> None:
    out = corrupt(batch, info, "gaussian", 51.0)
    img_std = float((out.inputs["img"] - batch.inputs["img"]).std())
    vec_std = float((out.inputs["vec"] - batch.inputs["vec"]).std())
    # 51 intensity units on an image stored with std 0.5 of 255 units -> 51 / 127.5 = 0.4
    assert abs(img_std - 0.4) < 0.03
    assert abs(vec_std - 51.0) < 4.0


def test_salt_pepper_values_and_fraction(batch: Batch, info: DatasetInfo) -> None:
    out = corrupt(batch, info, "salt_pepper", 0.3)
    changed = out.inputs["vec"] != batch.inputs["vec"]
    assert 0.25 < float(changed.float().mean()) < 0.35
    assert set(out.inputs["vec"][changed].abs().unique().tolist()) == {VECTOR_EXTREME}
    img, ref = out.inputs["img"].flatten(1), batch.inputs["img"].flatten(1)
    for row in range(img.shape[0]):
        hit = img[row] != ref[row]
        allowed = torch.stack([ref[row].min(), ref[row].max()])
        assert torch.isin(img[row][hit], allowed).all()


def test_blur_smooths_images_in_2d_and_keeps_constants(batch: Batch, info: DatasetInfo) -> None:
    kernel = gaussian_kernel(1.5)
    assert abs(float(kernel.sum()) - 1.0) < 1e-6 and kernel.numel() == 11
    impulse = torch.zeros(40, 1, 8, 8)
    impulse[:, 0, 4, 4] = 1.0
    flat = batch.replace(inputs={"vec": torch.full((40, 12), 2.0), "img": impulse})
    out = corrupt(flat, info, "blur", 1.0)
    assert torch.allclose(out.inputs["vec"], torch.full((40, 12), 2.0))
    blurred = out.inputs["img"][0, 0]
    assert abs(float(blurred.sum()) - 1.0) < 1e-4  # interior impulse: mass is kept
    assert blurred[4, 3] > 0 and blurred[3, 4] > 0  # spread along both axes
    assert torch.allclose(blurred, blurred.T, atol=1e-6)
    assert float(blurred.max()) < 0.5


def test_missing_zeroes_inputs_and_never_removes_every_modality(
    batch: Batch, info: DatasetInfo
) -> None:
    out = corrupt(batch, info, "missing", 1.0, seed=2)
    present = out.present_matrix()
    assert bool(present.any(1).all())
    assert int(present.sum()) == 40  # each sample keeps exactly one
    assert 5 < int(present[:, 0].sum()) < 35  # the kept one is a seeded draw, not always the first
    for m in batch.modalities:
        gone = ~out.present[m]
        assert float(out.inputs[m][gone].abs().sum()) == 0.0
        assert torch.equal(out.inputs[m][~gone], batch.inputs[m][~gone])


def test_missing_on_a_named_modality_keeps_the_last_one_present(
    batch: Batch, info: DatasetInfo
) -> None:
    only_img = torch.arange(40) < 10  # samples 0-9 have no vector: their image must survive
    inputs = {**batch.inputs, "vec": batch.inputs["vec"] * (~only_img).view(-1, 1).float()}
    start = batch.replace(inputs=inputs, present={"vec": ~only_img, "img": batch.present["img"]})
    out = corrupt(start, info, "missing", 1.0, target="img", seed=0)
    assert bool(out.present["img"][:10].all())
    assert torch.equal(out.inputs["img"][:10], batch.inputs["img"][:10])
    assert not bool(out.present["img"][10:].any())
