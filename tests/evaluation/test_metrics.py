from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import f1_score

from robustfusion.evaluation.metrics import accuracy, ece, macro_f1


def _one_hot_logits(pred: list[int], classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(pred), classes).float() * 5.0


def test_accuracy_by_hand() -> None:
    assert accuracy(_one_hot_logits([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    assert math.isnan(accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


def test_macro_f1_by_hand() -> None:
    # class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 1 fp 1 fn 0 -> 2/3; class 2: tp 1 -> 1
    pred, target = [0, 1, 1, 2], [0, 0, 1, 2]
    assert macro_f1(_one_hot_logits(pred), torch.tensor(target)) == pytest.approx(
        (2 / 3 + 2 / 3 + 1) / 3
    )


def test_macro_f1_matches_scikit_learn_with_unseen_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (200,), generator=generator)
    logits = torch.randn(200, 6, generator=generator)  # class 5 predicted but never a label
    expected = f1_score(target.numpy(), logits.argmax(1).numpy(), average="macro")
    assert macro_f1(logits, target) == pytest.approx(expected)


def test_ece_by_hand() -> None:
    # two-class probabilities: confidences 0.9, 0.9 (one right) and 0.6 (right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    logits = probs.log()
    target = torch.tensor([0, 1, 1])
    # bin (0.867, 0.933]: acc 0.5, conf 0.9 -> 2/3 * 0.4; bin (0.533, 0.6]: acc 1, conf 0.6 -> 1/3 * 0.4
    assert ece(logits, target) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    # perfectly calibrated and certain predictions have no calibration error
    assert ece(_one_hot_logits([0, 1]) * 100, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-9)
