"""add_gaussian_noise: per-sample std and seeds, independent of the batch."""

from __future__ import annotations

import pytest
import torch

from robustfusion.data.corruptions import add_gaussian_noise
from robustfusion.errors import DataError


def test_per_sample_std_and_seed() -> None:
    x = torch.zeros(4, 3, 50)
    std = torch.tensor([0.0, 1.0, 2.0, 1.0])
    seeds = torch.tensor([1, 2, 3, 2])
    out = add_gaussian_noise(x, std, seeds)
    assert torch.equal(out[0], x[0])
    assert abs(float(out[2].std()) / float(out[1].std()) - 2.0) < 0.4
    assert torch.equal(out[1], out[3])  # same seed, same noise
    alone = add_gaussian_noise(x[2:3], std[2:3], seeds[2:3])
    assert torch.equal(alone[0], out[2])


def test_gradient_flows_and_shapes_are_checked() -> None:
    x = torch.randn(2, 5, requires_grad=True)
    add_gaussian_noise(x, torch.ones(2), torch.tensor([0, 1])).sum().backward()
    assert torch.equal(x.grad, torch.ones(2, 5))
    with pytest.raises(DataError, match="shape"):
        add_gaussian_noise(x, torch.ones(3), torch.tensor([0, 1]))
    with pytest.raises(DataError, match="non-negative"):
        add_gaussian_noise(x, torch.tensor([-1.0, 1.0]), torch.tensor([0, 1]))
