"""Classification metrics: accuracy, macro-F1 and expected calibration error (ECE)."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Fraction of samples whose arg-max class equals the label."""
    if target.numel() == 0:
        return float("nan")
    return float((logits.argmax(dim=1) == target).double().mean())


def macro_f1(logits: Tensor, target: Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes seen in the labels or the predictions
    (scikit-learn's ``f1_score(average="macro")``; a class with no true positive scores 0)."""
    if target.numel() == 0:
        return float("nan")
    pred = logits.argmax(dim=1)
    classes = torch.unique(torch.cat([target, pred]))
    scores = []
    for c in classes:
        tp = float(((pred == c) & (target == c)).sum())
        fp = float(((pred == c) & (target != c)).sum())
        fn = float(((pred != c) & (target == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0)
    return float(sum(scores) / len(scores))


def ece(logits: Tensor, target: Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017, Eq. 3) with ``bins`` equal-width bins.

    ``sum_b |B_b| / N * |acc(B_b) - conf(B_b)|`` where confidence is the top softmax probability
    and bin ``b`` holds confidences in ``((b-1)/bins, b/bins]``.
    """
    if target.numel() == 0:
        return float("nan")
    probs = torch.softmax(logits.double(), dim=1)
    confidence, pred = probs.max(dim=1)
    correct = (pred == target).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    total = 0.0
    n = target.numel()
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        count = int(inside.sum())
        if count:
            gap = (correct[inside].mean() - confidence[inside].mean()).abs()
            total += count / n * float(gap)
    return float(total)
