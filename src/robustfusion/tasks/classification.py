"""Classification: one label per sample, ``[B, C]`` logits; accuracy, macro-F1 and ECE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.registry import TASKS
from robustfusion.tasks.base import MetricSpec, Task


class ClassificationMeter:
    """Keeps the logits and labels of the whole set; the metrics are computed once at the end
    (:mod:`robustfusion.evaluation.metrics`: accuracy, macro-F1, 15-bin ECE)."""

    def __init__(self) -> None:
        self.logits: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.logits.append(logits.detach().float().cpu())
        self.targets.append(target.detach().cpu())

    def compute(self) -> dict[str, Any]:
        from robustfusion.evaluation.metrics import accuracy, ece, macro_f1

        logits, targets = _joined(self.logits, self.targets)
        return {
            "accuracy": accuracy(logits, targets),
            "macro_f1": macro_f1(logits, targets),
            "ece": ece(logits, targets),
        }

    def primary(self) -> float:
        from robustfusion.evaluation.metrics import accuracy

        return accuracy(*_joined(self.logits, self.targets))


def _joined(logits: list[Tensor], targets: list[Tensor]) -> tuple[Tensor, Tensor]:
    if not logits:
        return torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
    return torch.cat(logits), torch.cat(targets)


class Classification(Task):
    """``target``: ``LongTensor[B]`` class indices; logits ``[B, C]``; the head is a linear layer
    on the fused vector; loss: cross-entropy; checkpoints selected on validation accuracy."""

    name: ClassVar[str] = "classification"
    feature_kind: ClassVar[str] = "vector"
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("accuracy", "accuracy"),
        MetricSpec("macro_f1", "macro-F1"),
        MetricSpec("ece", "ECE", higher_is_better=False),
    )
    unimodal_label: ClassVar[str] = "acc"
    primary: ClassVar[str] = "accuracy"
    selection_metric: ClassVar[str] = "acc"
    selection_key: ClassVar[str] = "val_accuracy"

    def is_target(self, value: object) -> bool:
        return isinstance(value, int) or (isinstance(value, Tensor) and value.dim() == 0)

    def collate_targets(self, values: Sequence[Any]) -> Tensor:
        return torch.tensor([int(v) for v in values], dtype=torch.long)

    def target_shape(self, input_shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
        return ()

    def build_head(self, in_dim: int, num_classes: int, target_shape: tuple[int, ...]) -> nn.Module:
        return nn.Linear(in_dim, num_classes)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target)

    def meter(self, num_classes: int) -> ClassificationMeter:
        return ClassificationMeter()

    def selection_counts(self, logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
        correct = (logits.argmax(dim=1) == target).sum().double()
        return torch.stack([correct, correct.new_tensor(float(target.shape[0]))])

    def selection_score(self, counts: Tensor) -> float:
        return float(counts[0] / counts[1].clamp_min(1.0))


TASKS.register(Classification.name, "one label per sample: accuracy, macro-F1, ECE", facts=None)(
    Classification()
)
