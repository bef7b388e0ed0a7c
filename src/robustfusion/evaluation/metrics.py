"""Classification metrics (torchmetrics): accuracy, macro-F1 and expected calibration error (ECE).

Each function takes logits ``[N, C]`` and integer labels ``[N]`` and returns a Python float
(``nan`` for an empty set; torchmetrics computes in float32, so figures agree with a float64
computation to about 1e-7). The logits are turned into softmax probabilities here, in float64,
before torchmetrics sees them: torchmetrics applies a softmax only when some value lies outside
[0, 1], so logits that happen to lie inside [0, 1] would otherwise be read as probabilities.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_f1_score,
)


def _probabilities(logits: Tensor) -> Tensor:
    return torch.softmax(logits.detach().double(), dim=1)


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Fraction of samples whose arg-max class equals the label (micro-averaged accuracy)."""
    if target.numel() == 0:
        return float("nan")
    probs = _probabilities(logits)
    return float(
        multiclass_accuracy(probs, target.long(), num_classes=probs.shape[1], average="micro")
    )


def macro_f1(logits: Tensor, target: Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes seen in the labels or the predictions.

    This is scikit-learn's ``f1_score(average="macro")`` rule: a class that is neither a label nor
    a prediction in this set has no F1 and is left out; a class with no true positive scores 0.
    Per-class F1 comes from torchmetrics (``average="none"``); the mean over the seen classes is
    taken here, so that the figure does not depend on how a torchmetrics version treats classes
    absent from a small evaluation set (on a 10-class test set where one class is never
    predicted nor present, averaging over all 10 would add a 0 and understate F1).
    """
    if target.numel() == 0:
        return float("nan")
    probs = _probabilities(logits)
    classes = probs.shape[1]
    target = target.long()
    per_class = multiclass_f1_score(probs, target, num_classes=classes, average="none")
    pred = probs.argmax(dim=1)
    seen = (torch.bincount(target, minlength=classes) + torch.bincount(pred, minlength=classes)) > 0
    return float(per_class[seen].double().mean())


def ece(logits: Tensor, target: Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017, Eq. 3): torchmetrics' ``CalibrationError``
    with ``n_bins=bins`` equal-width bins and ``norm="l1"``.

    ``sum_b |B_b| / N * |acc(B_b) - conf(B_b)|``, confidence = the top softmax probability.
    """
    if target.numel() == 0:
        return float("nan")
    probs = _probabilities(logits)
    return float(
        multiclass_calibration_error(
            probs, target.long(), num_classes=probs.shape[1], n_bins=bins, norm="l1"
        )
    )
