"""corrupt(): determinism independent of batching, severity, targets, validation."""

from __future__ import annotations

import pytest
import torch

from robustfusion.data.base import DatasetInfo
from robustfusion.data.corruptions import corrupt
from robustfusion.errors import ConfigError, DataError, UnknownNameError
from robustfusion.registry import CORRUPTIONS
from robustfusion.types import Batch


def take(batch: Batch, rows: list[int]) -> Batch:
    """The sub-batch of ``rows`` (keeping their sample indices)."""
    idx = torch.tensor(rows)
    return Batch(
        inputs={m: x[idx] for m, x in batch.inputs.items()},
        present={m: p[idx] for m, p in batch.present.items()},
        target=batch.target[idx],
        index=batch.index[idx],
    )


CASES = [("gaussian", 20.0), ("salt_pepper", 0.2), ("blur", 1.0), ("missing", 0.5)]


def test_registry_holds_the_four_corruptions() -> None:
    assert {"gaussian", "salt_pepper", "blur", "missing"} <= set(CORRUPTIONS.names())


@pytest.mark.parametrize(("name", "severity"), CASES)
@pytest.mark.parametrize("target", ["all", "each", "img"])
def test_same_seed_same_output_whatever_the_batching(
    batch: Batch, info: DatasetInfo, name: str, severity: float, target: str
) -> None:
    full = corrupt(batch, info, name, severity, target, seed=7)
    again = corrupt(batch, info, name, severity, target, seed=7)
    rows = [31, 2, 17, 5, 0, 39, 22]
    part = corrupt(take(batch, rows), info, name, severity, target, seed=7)
    for m in batch.modalities:
        assert torch.equal(full.inputs[m], again.inputs[m])
        assert torch.equal(full.inputs[m][rows], part.inputs[m])
        assert torch.equal(full.present[m][rows], part.present[m])


@pytest.mark.parametrize(("name", "severity"), [("gaussian", 20.0), ("salt_pepper", 0.2)])
def test_other_seed_other_noise(
    batch: Batch, info: DatasetInfo, name: str, severity: float
) -> None:
    a = corrupt(batch, info, name, severity, seed=0)
    b = corrupt(batch, info, name, severity, seed=1)
    assert not torch.equal(a.inputs["vec"], b.inputs["vec"])


@pytest.mark.parametrize(
    ("name", "severities"),
    [
        ("gaussian", [5.0, 20.0, 80.0]),
        ("salt_pepper", [0.05, 0.2, 0.5]),
        ("blur", [0.5, 1.0, 2.0]),
    ],
)
def test_severity_increases_the_change(
    batch: Batch, info: DatasetInfo, name: str, severities: list[float]
) -> None:
    for m in batch.modalities:
        changes = [
            float((corrupt(batch, info, name, s).inputs[m] - batch.inputs[m]).pow(2).mean())
            for s in severities
        ]
        assert changes[0] > 0
        assert changes == sorted(changes), (m, changes)


def test_missing_rate_grows_with_severity(batch: Batch, info: DatasetInfo) -> None:
    absent = [
        int((~corrupt(batch, info, "missing", s, target="img").present["img"]).sum())
        for s in (0.1, 0.5, 0.9)
    ]
    assert absent == sorted(absent) and absent[0] < absent[2]


def test_severity_zero_returns_the_batch(batch: Batch, info: DatasetInfo) -> None:
    for name, _ in CASES:
        assert corrupt(batch, info, name, 0.0, "each") is batch


def test_named_target_leaves_the_others_alone(batch: Batch, info: DatasetInfo) -> None:
    out = corrupt(batch, info, "gaussian", 30.0, target="vec")
    assert torch.equal(out.inputs["img"], batch.inputs["img"])
    assert not torch.equal(out.inputs["vec"], batch.inputs["vec"])
    assert batch.inputs["vec"] is not out.inputs["vec"]  # the input batch is not modified


def test_each_corrupts_about_half_of_each_modality_independently(
    batch: Batch, info: DatasetInfo
) -> None:
    out = corrupt(batch, info, "gaussian", 30.0, target="each", seed=3)
    hit = {m: (out.inputs[m] != batch.inputs[m]).flatten(1).any(1) for m in batch.modalities}
    for m in batch.modalities:
        assert 8 <= int(hit[m].sum()) <= 32
    assert not torch.equal(hit["vec"], hit["img"])
    # the same samples are selected at every severity and for every corruption
    blurred = corrupt(batch, info, "blur", 1.0, target="each", seed=3)
    hit_blur = (blurred.inputs["img"] != batch.inputs["img"]).flatten(1).any(1)
    assert torch.equal(hit["img"], hit_blur)


def test_absent_modalities_are_not_corrupted(batch: Batch, info: DatasetInfo) -> None:
    present = dict(batch.present)
    present["img"] = torch.arange(40) % 2 == 0
    inputs = dict(batch.inputs)
    inputs["img"] = inputs["img"] * present["img"].view(-1, 1, 1, 1)
    masked = batch.replace(present=present, inputs=inputs)
    out = corrupt(masked, info, "gaussian", 50.0)
    assert torch.equal(out.inputs["img"][1::2], torch.zeros(20, 1, 8, 8))


def test_invalid_arguments(batch: Batch, info: DatasetInfo) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian'"):
        corrupt(batch, info, "gausian", 1.0)
    with pytest.raises(ConfigError, match="use all, each or one of vec, img"):
        corrupt(batch, info, "gaussian", 1.0, target="audio")
    with pytest.raises(ConfigError, match="fraction"):
        corrupt(batch, info, "missing", 1.5)
    with pytest.raises(ConfigError, match=">= 0"):
        corrupt(batch, info, "blur", -1.0)
    wrong = batch.replace(inputs={**batch.inputs, "vec": torch.zeros(40, 5)})
    with pytest.raises(DataError, match="per-sample shape"):
        corrupt(wrong, info, "gaussian", 1.0)


@pytest.mark.parametrize(("name", "severity"), CASES)
def test_keeps_dtype_and_device_of_the_inputs(
    batch: Batch, info: DatasetInfo, name: str, severity: float
) -> None:
    wide = batch.replace(inputs={m: x.double() for m, x in batch.inputs.items()})
    out = corrupt(wide, info, name, severity, target="each", seed=4)
    for m in batch.modalities:
        assert out.inputs[m].dtype == torch.float64
        assert out.present[m].device == batch.present[m].device
        assert out.corrupted[m].dtype == torch.bool


def test_each_selection_is_the_one_helper_every_caller_uses(
    batch: Batch, info: DatasetInfo
) -> None:
    from robustfusion.data.corruptions.apply import each_selected

    out = corrupt(batch, info, "gaussian", 30.0, target="each", seed=3)
    for m in batch.modalities:
        assert torch.equal(out.corrupted[m], each_selected(batch.index, 3, m))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("name", "severity"), CASES)
def test_cuda_corrupts_like_the_cpu(
    batch: Batch, info: DatasetInfo, name: str, severity: float
) -> None:
    cpu = corrupt(batch, info, name, severity, target="each", seed=5)
    gpu = corrupt(batch.to("cuda"), info, name, severity, target="each", seed=5)
    for m in batch.modalities:
        assert gpu.inputs[m].is_cuda
        torch.testing.assert_close(gpu.inputs[m].cpu(), cpu.inputs[m])
        assert torch.equal(gpu.present[m].cpu(), cpu.present[m])
        assert torch.equal(gpu.corrupted[m].cpu(), cpu.corrupted[m])
