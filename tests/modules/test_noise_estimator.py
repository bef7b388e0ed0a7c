"""Tests of UDML's noise-intensity predictor."""

from __future__ import annotations

import pytest
import torch

from robustfusion.modules.noise_estimator import (
    NoiseEstimator,
    StackedNoiseEstimators,
    fast_dropout,
    noise_level_loss,
    pool_map,
)


def test_estimator_outputs_positive_level_per_sample() -> None:
    torch.manual_seed(0)
    estimator = NoiseEstimator(12)
    sigma_hat = estimator(torch.rand(5, 12))
    assert sigma_hat.shape == (5,)
    assert bool((sigma_hat > 0).all())
    layers = [type(m).__name__ for m in estimator.net]
    assert layers == ["Linear", "Dropout", "Linear"]
    assert estimator.net[0].out_features == 256


def test_estimator_learns_the_injected_level_from_sigma() -> None:
    torch.manual_seed(0)
    level = torch.randint(1, 12, (256,)).float()
    # Synthetic pooled sigma that grows with the level, plus nuisance variation.
    sigma = level.sqrt().unsqueeze(1) * torch.ones(256, 8) + 0.1 * torch.randn(256, 8)
    estimator = NoiseEstimator(8)
    optimiser = torch.optim.Adam(estimator.parameters(), lr=1e-2)
    for _ in range(100):
        loss = noise_level_loss(estimator(sigma), level)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    estimator.eval()
    with torch.no_grad():
        predicted = estimator(sigma)
    assert float(noise_level_loss(predicted, level).detach()) < 0.5
    means = torch.stack([predicted[level == v].mean() for v in range(1, 12)])
    assert bool((means[1:] > means[:-1]).all())


def test_pool_map_averages_spatial_axes_and_keeps_vectors() -> None:
    x = torch.arange(24.0).view(2, 3, 2, 2)
    assert torch.allclose(pool_map(x), x.mean(dim=(2, 3)))
    v = torch.randn(4, 3)
    assert pool_map(v) is v


def test_stacked_estimators_match_separate_estimators() -> None:
    torch.manual_seed(0)
    stacked = StackedNoiseEstimators(3, 8, hidden=16)
    separate = [NoiseEstimator(8, hidden=16) for _ in range(3)]
    with torch.no_grad():
        for j, est in enumerate(separate):
            est.net[0].weight.copy_(stacked.weight1[j].t())
            est.net[0].bias.copy_(stacked.bias1[j, 0])
            est.net[2].weight.copy_(stacked.weight2[j])
            est.net[2].bias.copy_(stacked.bias2[j])
    x = torch.rand(3, 5, 8)
    stacked.eval()
    out = stacked(x)
    assert out.shape == (3, 5)
    for j, est in enumerate(separate):
        est.eval()
        assert torch.allclose(out[j], est(x[j]), atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        stacked(torch.rand(2, 5, 8))


def test_fast_dropout_drops_a_tenth_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    y = fast_dropout(x, 0.1)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.1) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert torch.equal(fast_dropout(x, 0.0), x)
    # In training the stacked estimator is stochastic; in evaluation it is not.
    stacked = StackedNoiseEstimators(2, 4)
    inputs = torch.rand(2, 64, 4)
    assert not torch.equal(stacked(inputs), stacked(inputs))
    stacked.eval()
    assert torch.equal(stacked(inputs), stacked(inputs))
