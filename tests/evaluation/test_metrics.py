from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from robustfusion.evaluation.metrics import accuracy, ece, macro_f1


def _one_hot_logits(pred: list[int], classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(pred), classes).float() * 5.0


def _reference_ece(logits: torch.Tensor, target: torch.Tensor, bins: int = 15) -> float:
    """The hand-written ECE these metrics replaced (bins ``((b-1)/bins, b/bins]``)."""
    probs = torch.softmax(logits.double(), dim=1)
    confidence, pred = probs.max(dim=1)
    correct = (pred == target).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = (correct[inside].mean() - confidence[inside].mean()).abs()
            total += int(inside.sum()) / target.numel() * float(gap)
    return total


def test_accuracy_by_hand() -> None:
    assert accuracy(_one_hot_logits([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    assert math.isnan(accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
    assert math.isnan(macro_f1(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
    assert math.isnan(ece(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


def test_logits_inside_unit_interval_are_still_logits() -> None:
    # torchmetrics would read these as probabilities; ECE must use their softmax instead.
    logits = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    target = torch.tensor([0, 1])
    confidence = torch.softmax(logits, 1).max(1).values  # 0.690, 0.646: both right
    assert ece(logits, target) == pytest.approx(float((1 - confidence).mean()), abs=1e-6)


def test_macro_f1_by_hand() -> None:
    # class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 1 fp 1 fn 0 -> 2/3; class 2: tp 1 -> 1
    pred, target = [0, 1, 1, 2], [0, 0, 1, 2]
    assert macro_f1(_one_hot_logits(pred), torch.tensor(target)) == pytest.approx(
        (2 / 3 + 2 / 3 + 1) / 3
    )
    # a fourth class neither predicted nor a label is left out (not averaged in as a 0)
    assert macro_f1(_one_hot_logits(pred, classes=4), torch.tensor(target)) == pytest.approx(
        (2 / 3 + 2 / 3 + 1) / 3
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn_and_the_previous_ece(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 5, (300,), generator=generator)  # classes 5 and 6 never labels
    logits = 2.0 * torch.randn(300, 7, generator=generator)
    logits[:, 6] -= 100.0  # class 6 never predicted nor a label: excluded from the mean
    pred = logits.argmax(1).numpy()
    assert accuracy(logits, target) == pytest.approx(accuracy_score(target.numpy(), pred))
    assert macro_f1(logits, target) == pytest.approx(
        f1_score(target.numpy(), pred, average="macro"), abs=1e-6
    )
    assert ece(logits, target) == pytest.approx(_reference_ece(logits, target), abs=1e-6)


def test_ece_by_hand() -> None:
    # two-class probabilities: confidences 0.9, 0.9 (one right) and 0.6 (right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    logits = probs.log()
    target = torch.tensor([0, 1, 1])
    # bin of 0.9: acc 0.5, conf 0.9 -> 2/3 * 0.4; bin of 0.6: acc 1, conf 0.6 -> 1/3 * 0.4
    assert ece(logits, target) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    # certain, correct predictions have no calibration error
    assert ece(_one_hot_logits([0, 1]) * 100, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-9)
