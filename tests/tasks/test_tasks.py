"""The task layer: registration, collation, heads, losses, streamed metrics, selection, columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from robustfusion.cli import main
from robustfusion.data import collate
from robustfusion.errors import ConfigError, DataError
from robustfusion.evaluation.results import results_columns, task_of_columns
from robustfusion.methods.base import MethodSpec, build_method, check_task_support, method_facts
from robustfusion.modules.fusion import build_fusion
from robustfusion.registry import TASKS
from robustfusion.tasks import IGNORE_INDEX, task_of
from robustfusion.tasks.segmentation import scores

SEG = task_of("segmentation")
CLS = task_of("classification")


def test_both_tasks_are_registered_with_their_metric_specs() -> None:
    assert TASKS.names() == ["classification", "segmentation"]
    assert CLS.metric_names == ("accuracy", "macro_f1", "ece")
    assert not CLS.metric("ece").higher_is_better
    assert (SEG.primary, SEG.primary_spec.title, SEG.ignore_index) == ("miou", "mIoU", 255)


def test_classification_keeps_its_results_columns() -> None:
    # the columns every results.csv written before the task layer has, in the same order
    assert results_columns(CLS, ("a", "b")) == [
        "dataset", "method", "fusion", "seed", "corruption", "severity", "target", "weights",
        "accuracy", "macro_f1", "ece", "view", "num_samples", "config_hash",
        "weight_a", "weight_b", "uacc_a", "uacc_b",
    ]  # fmt: skip
    columns = results_columns(SEG, ("rgb", "depth"))
    assert {"miou", "pixel_accuracy", "umiou_rgb"} <= set(columns) and "accuracy" not in columns
    assert task_of_columns(columns) is SEG and task_of_columns(results_columns(CLS, ("a",))) is CLS


def test_collate_batches_targets_by_their_task() -> None:
    vector = {"inputs": {"x": torch.zeros(3)}, "present": {"x": True}, "index": 0}
    labels = collate([{**vector, "target": 1}, {**vector, "target": 2}])
    assert labels.target.tolist() == [1, 2] and labels.target.dtype == torch.long
    maps = collate([{**vector, "target": torch.full((4, 5), k)} for k in (0, IGNORE_INDEX)])
    assert maps.target.shape == (2, 4, 5) and maps.target.dtype == torch.long
    assert maps.corrupted_matrix().shape == (2, 1)
    with pytest.raises(DataError, match="neither a class index nor a label map"):
        collate([{**vector, "target": "cat"}])


def _one_hot_logits(pred: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, classes).permute(0, 3, 1, 2).float()


def test_miou_excludes_classes_without_ground_truth_and_ignored_pixels() -> None:
    target = torch.tensor([[[0, 0, 1, IGNORE_INDEX]]])
    pred = torch.tensor([[[0, 1, 1, 2]]])  # class 2: predicted on an ignored pixel only
    meter = SEG.meter(3)
    meter.update(_one_hot_logits(pred, 3), target)
    result = meter.compute()
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; class 2: no ground truth, excluded
    assert result["miou"] == pytest.approx(0.5)
    assert result["pixel_accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(result["per_class_iou"][2])


def test_a_predicted_class_without_ground_truth_still_costs_the_others() -> None:
    target = torch.tensor([[[0, 0]]])
    pred = torch.tensor([[[0, 2]]])
    meter = SEG.meter(3)
    meter.update(_one_hot_logits(pred, 3), target)
    assert meter.compute()["miou"] == pytest.approx(0.5)  # only class 0 counts: 1 / (1 + 1)


def test_metrics_are_accumulated_over_the_set_not_averaged_per_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 5, 5, generator=generator)
    target = torch.randint(0, 4, (6, 5, 5), generator=generator)
    target[0] = IGNORE_INDEX
    whole, parts = SEG.meter(4), SEG.meter(4)
    whole.update(logits, target)
    for rows in (slice(0, 1), slice(1, 4), slice(4, 6)):
        parts.update(logits[rows], target[rows])
    assert parts.compute() == whole.compute()
    counts = sum(SEG.selection_counts(logits[r], target[r], 4) for r in (slice(0, 3), slice(3, 6)))
    assert SEG.selection_score(counts) == pytest.approx(whole.compute()["miou"])


def test_an_empty_set_has_no_figures() -> None:
    assert math.isnan(scores(torch.zeros(3, 3, dtype=torch.long))["miou"])
    assert (
        CLS.selection_score(CLS.selection_counts(torch.zeros(0, 3), torch.zeros(0).long(), 3)) == 0
    )


def test_segmentation_loss_ignores_unlabelled_pixels() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    masked = target.clone()
    masked[1] = IGNORE_INDEX
    assert SEG.loss(logits, masked) == pytest.approx(float(SEG.loss(logits[:1], target[:1])))
    assert SEG.loss(logits, torch.full_like(target, IGNORE_INDEX)) == 0  # no nan


def test_map_fusion_is_vector_fusion_at_every_position() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 2}
    features = {"a": torch.randn(2, 3, 4, 5), "b": torch.randn(2, 2, 4, 5)}
    present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, False])}
    weights = torch.tensor([[0.3, 0.7], [1.0, 0.0]])
    for name in ("concat", "sum"):
        fusion = build_fusion(name, dims, 6, maps=True)
        fused = fusion(features, present, weights)
        assert fused.shape == (2, 6, 4, 5)
        at = {m: f[:, :, 2, 3] for m, f in features.items()}
        torch.testing.assert_close(fused[:, :, 2, 3], fusion(at, present, weights))
    with pytest.raises(ConfigError, match="fuses vectors only.*--fusion concat or sum"):
        build_fusion("attention", dims, 6, maps=True)


def _segmentation_spec() -> MethodSpec:
    return MethodSpec(
        modalities=("rgb", "depth"),
        feature_dims={"rgb": 8, "depth": 8},
        num_classes=4,
        hidden_dim=8,
        input_shapes={"rgb": (3, 16, 16), "depth": (1, 16, 16)},
        input_kinds={"rgb": "image", "depth": "map"},
        task="segmentation",
        target_shape=(16, 16),
    )


def test_static_segments_feature_maps() -> None:
    method = build_method("static", _segmentation_spec())
    features = {"rgb": torch.randn(3, 8, 4, 4), "depth": torch.randn(3, 8, 4, 4)}
    present = {"rgb": torch.ones(3, dtype=torch.bool), "depth": torch.tensor([1, 0, 1]).bool()}
    output = method(features, present)
    assert output.logits.shape == (3, 4, 16, 16)
    assert output.weights[1].tolist() == [1.0, 0.0]


def test_methods_not_defined_for_a_task_are_refused_in_one_line() -> None:
    assert "segmentation" not in method_facts("tmc").tasks
    with pytest.raises(ConfigError, match="method 'tmc' is not defined for segmentation"):
        check_task_support("tmc", "segmentation")
    with pytest.raises(ConfigError, match="not defined for segmentation.*static"):
        build_method("tmc", _segmentation_spec())
    with pytest.raises(ConfigError, match="is not defined for segmentation"):
        check_task_support("modality_dropout+tmc", "segmentation")  # every part must support it


def test_training_segmentation_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--dataset", "rgbd_scenes", "--dataset-option", "size=16",
            "--dataset-option", "train=32", "--dataset-option", "val=16",
            "--dataset-option", "test=16", "--encoder", "rgb=cnn", "--encoder", "depth=cnn",
            "--encoder-option", "cnn.width=4", "--feature-dim", "8", "--hidden-dim", "8",
            "--epochs", "2", "--batch-size", "16", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    line = capsys.readouterr().out
    assert line.startswith("test mIoU ") and "val mIoU" in line
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and 0 <= metrics["miou"] <= 1
    assert len(metrics["per_class_iou"]) == 8 and "val_miou" in metrics
    assert main(["evaluate", str(out), "--corruption", "gaussian", "--target", "depth",
                 "--severities", "0,0.5"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert table.splitlines()[1].split()[:2] == ["severity", "miou"]


def test_an_unsupported_method_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--dataset", "rgbd_scenes", "--dataset-option", "size=16",
            "--method", "tmc", "--epochs", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not defined for segmentation" in err[0]
    assert not out.exists() or not any(out.iterdir())
