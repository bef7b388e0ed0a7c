"""Semantic segmentation: one label per pixel, ``[B, C, H, W]`` logits; mIoU, pixel accuracy.

Metrics come from one confusion matrix accumulated over the whole evaluation set
(torchmetrics' ``multiclass_confusion_matrix``; pixels at :data:`IGNORE_INDEX` are left out):
IoU_c = TP_c / (TP_c + FP_c + FN_c); **mIoU is the mean over the classes that have at least one
ground-truth pixel in the set** (a class with none has no IoU and is excluded, as in the common
RGB-D codebases' evaluation on NYUv2, where all 40 classes occur in the test set). Pixel accuracy =
sum_c TP_c / labelled pixels; mean class accuracy = the mean over the same classes of
TP_c / ground-truth pixels of c. Per-class IoU is reported with ``nan`` for excluded classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_confusion_matrix

from robustfusion.errors import DataError
from robustfusion.registry import TASKS
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.tasks.base import MetricSpec, Task


def confusion_matrix(logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``LongTensor[C, C]`` (rows: ground truth, columns: prediction) of one batch."""
    preds = logits.argmax(dim=1)
    return multiclass_confusion_matrix(
        preds, target.long(), num_classes, ignore_index=IGNORE_INDEX, validate_args=False
    ).long()


def scores(confusion: Tensor) -> dict[str, Any]:
    """mIoU, pixel accuracy, mean class accuracy and per-class IoU from a confusion matrix."""
    matrix = confusion.double()
    true_positive = matrix.diagonal()
    ground_truth = matrix.sum(dim=1)
    predicted = matrix.sum(dim=0)
    seen = ground_truth > 0
    union = ground_truth + predicted - true_positive
    iou = torch.where(seen, true_positive / union.clamp_min(1.0), torch.nan)
    labelled = float(ground_truth.sum())
    if labelled == 0:
        nan = float("nan")
        return {
            "miou": nan,
            "pixel_accuracy": nan,
            "mean_accuracy": nan,
            "per_class_iou": [nan] * len(iou),
        }
    return {
        "miou": float(iou[seen].mean()),
        "pixel_accuracy": float(true_positive.sum()) / labelled,
        "mean_accuracy": float((true_positive[seen] / ground_truth[seen]).mean()),
        "per_class_iou": [float(v) for v in iou],
    }


class SegmentationMeter:
    """A confusion matrix summed over every batch; :func:`scores` at the end."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, logits: Tensor, target: Tensor) -> None:
        if logits.shape[0] == 0:
            return
        self.confusion += confusion_matrix(logits.detach(), target, self.num_classes).cpu()

    def compute(self) -> dict[str, Any]:
        return scores(self.confusion)

    def primary(self) -> float:
        return float(scores(self.confusion)["miou"])


class Segmentation(Task):
    """``target``: ``LongTensor[B, H, W]`` (:data:`IGNORE_INDEX` where unlabelled); logits
    ``[B, C, H, W]``; the head is :class:`~robustfusion.modules.segmentation_head.SegmentationHead`
    on the fused map; loss: per-pixel cross-entropy without the ignored pixels; checkpoints
    selected on validation mIoU."""

    name: ClassVar[str] = "segmentation"
    feature_kind: ClassVar[str] = "map"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("miou", "mIoU"),
        MetricSpec("pixel_accuracy", "pixel accuracy"),
        MetricSpec("mean_accuracy", "mean class accuracy"),
    )
    unimodal_label: ClassVar[str] = "miou"
    primary: ClassVar[str] = "miou"
    selection_metric: ClassVar[str] = "miou"
    selection_key: ClassVar[str] = "val_miou"
    ignore_index: ClassVar[int | None] = IGNORE_INDEX

    def is_target(self, value: object) -> bool:
        return isinstance(value, Tensor) and value.dim() == 2

    def collate_targets(self, values: Sequence[Any]) -> Tensor:
        return torch.stack([torch.as_tensor(v) for v in values]).long()

    def target_shape(self, input_shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
        sizes = {tuple(shape[-2:]) for shape in input_shapes.values() if len(shape) >= 2}
        if len(sizes) != 1 or any(len(shape) < 2 for shape in input_shapes.values()):
            raise DataError(
                "segmentation needs every modality as a map of one size (C, H, W), got "
                + ", ".join(f"{m} {tuple(s)}" for m, s in input_shapes.items())
                + ": resize the modalities to the label maps' size"
            )
        return sizes.pop()

    def build_head(self, in_dim: int, num_classes: int, target_shape: tuple[int, ...]) -> nn.Module:
        from robustfusion.modules.segmentation_head import SegmentationHead

        return SegmentationHead(in_dim, num_classes, (target_shape[0], target_shape[1]))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
        # A batch without a labelled pixel gives nan; it teaches nothing.
        return torch.nan_to_num(loss, nan=0.0)

    def meter(self, num_classes: int) -> SegmentationMeter:
        return SegmentationMeter(num_classes)

    def selection_counts(self, logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
        return confusion_matrix(logits, target, num_classes).double().flatten()

    def selection_score(self, counts: Tensor) -> float:
        size = math.isqrt(counts.numel())
        value = scores(counts.reshape(size, size).cpu())["miou"]
        return value if math.isfinite(value) else 0.0


TASKS.register(Segmentation.name, "one label per pixel: mIoU, pixel accuracy, per-class IoU")(
    Segmentation()
)
