"""The run's optimiser: the configured kind and settings, fused where torch offers it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustfusion.training.config import TrainConfig
from robustfusion.training.optim import build_optimizer


@pytest.mark.parametrize(
    ("name", "kind"),
    [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)],
)
def test_optimizer_kind_settings_and_fused_on_cpu(name: str, kind: type) -> None:
    model = nn.Linear(4, 2)
    config = TrainConfig(optimizer=name, lr=0.05, weight_decay=0.01, momentum=0.5)
    optimizer = build_optimizer(model.parameters(), config)
    assert isinstance(optimizer, kind)
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.05 and group["weight_decay"] == 0.01 and group["fused"] is True
    if name == "sgd":
        assert group["momentum"] == 0.5


def test_fused_and_unfused_steps_agree() -> None:
    torch.manual_seed(0)
    models = [nn.Linear(6, 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = build_optimizer(models[0].parameters(), TrainConfig())
    plain = torch.optim.Adam(models[1].parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(8, 6)
    for model, optimizer in zip(models, (fused, plain), strict=True):
        for _ in range(5):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
