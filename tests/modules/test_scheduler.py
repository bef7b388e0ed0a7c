"""DMS schedulers: rule formula, masked softmax, learned MLP."""

from __future__ import annotations

import pytest
import torch

from robustfusion.modules.scheduler import (
    LearnedScheduler,
    RuleScheduler,
    build_scheduler,
    masked_softmax,
)


def test_rule_weights_follow_the_formula_and_sum_to_one() -> None:
    c = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    u = torch.tensor([[0.0, 0.5], [0.2, 0.2]])
    s = torch.tensor([[0.7, 0.7], [0.6, 0.6]])
    present = torch.ones(2, 2, dtype=torch.bool)
    w = RuleScheduler(a=1, b=1, g=1, tau=0.5)(c, u, s, present)
    expected = torch.softmax((c - u + s) / 0.5, dim=1)
    assert torch.allclose(w, expected)
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert w[0, 0] > w[0, 1]
    assert torch.allclose(w[1], torch.tensor([0.5, 0.5]))


def test_absent_modality_gets_zero_weight() -> None:
    logits = torch.tensor([[5.0, 1.0, 2.0]])
    w = masked_softmax(logits, torch.tensor([[False, True, True]]))
    assert w[0, 0] == 0
    assert torch.allclose(w.sum(1), torch.ones(1))


def test_learned_scheduler_starts_uniform_and_learns() -> None:
    torch.manual_seed(0)
    scheduler = LearnedScheduler(num_modalities=3)
    c, u, s = torch.rand(8, 3), torch.rand(8, 3), torch.rand(8, 3)
    present = torch.ones(8, 3, dtype=torch.bool)
    present[0, 2] = False
    w = scheduler(c, u, s, present)
    assert torch.allclose(w[1:], torch.full((7, 3), 1 / 3))
    assert torch.allclose(w[0], torch.tensor([0.5, 0.5, 0.0]))
    # it can learn to prefer the most confident modality
    optimiser = torch.optim.Adam(scheduler.parameters(), lr=0.05)
    for _ in range(200):
        c = torch.rand(32, 3)
        w = scheduler(
            c, torch.zeros(32, 3), torch.zeros(32, 3), torch.ones(32, 3, dtype=torch.bool)
        )
        loss = -(w * (c == c.max(dim=1, keepdim=True).values)).sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(-loss.detach()) > 0.8


def test_build_scheduler_names() -> None:
    assert isinstance(build_scheduler("rule", 2), RuleScheduler)
    assert isinstance(build_scheduler("learned", 2), LearnedScheduler)
    with pytest.raises(ValueError, match="unknown scheduler"):
        build_scheduler("magic", 2)
