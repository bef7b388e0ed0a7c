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


def test_noise_is_standard_normal_and_keyed_by_the_seed_alone() -> None:
    x = torch.zeros(2000, 30)
    seeds = torch.arange(2000) * 7919 + 11
    out = add_gaussian_noise(x, torch.full((2000,), 2.0), seeds)
    assert abs(float(out.mean())) < 0.03 and abs(float(out.std()) - 2.0) < 0.03
    # a row's noise depends on its seed only: reversed batch, reversed rows
    flipped = add_gaussian_noise(x, torch.full((2000,), 2.0), seeds.flip(0))
    assert torch.equal(flipped, out.flip(0))
    # float64 inputs get float64 noise (not float32 noise cast up)
    wide = add_gaussian_noise(x[:50].double(), torch.ones(50), seeds[:50])
    assert wide.dtype == torch.float64 and not torch.equal(wide, wide.float().double())
