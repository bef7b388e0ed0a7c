"""Tests of the probabilistic representation heads, reparameterisation and Gaussian KL."""

from __future__ import annotations

import math

import pytest
import torch

from robustfusion.modules.probabilistic import ProbabilisticHead, gaussian_kl, reparameterise


def test_spatial_head_keeps_map_layout_and_uses_batchnorm() -> None:
    torch.manual_seed(0)
    head = ProbabilisticHead(8, 5, spatial=True)
    mu, logvar = head(torch.randn(4, 8, 3, 3))
    assert mu.shape == logvar.shape == (4, 5, 3, 3)
    # BatchNorm in training mode: every channel has ~zero mean over (batch, h, w).
    assert torch.allclose(mu.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules())


def test_vector_head_uses_layernorm() -> None:
    torch.manual_seed(0)
    head = ProbabilisticHead(6, 7, spatial=False)
    mu, logvar = head(torch.randn(3, 6))
    assert mu.shape == logvar.shape == (3, 7)
    # LayerNorm at initialisation: every row has ~zero mean over features.
    assert torch.allclose(mu.mean(dim=1), torch.zeros(3), atol=1e-5)
    assert not torch.allclose(mu, logvar)


def test_vector_head_with_batchnorm_keeps_per_sample_scale() -> None:
    torch.manual_seed(0)
    head = ProbabilisticHead(6, 7, spatial=False, vector_norm="batch")
    x = torch.randn(16, 6)
    x[8:] *= 5.0  # the second half of the batch is much larger
    _, logvar = head(x)
    # LayerNorm would give every row mean ~0; BatchNorm keeps rows apart.
    assert float(logvar.detach().mean(dim=1).std()) > 0.1
    assert torch.allclose(logvar.mean(dim=0), torch.zeros(7), atol=1e-5)
    with pytest.raises(ValueError, match="vector_norm"):
        ProbabilisticHead(6, 7, spatial=False, vector_norm="group")


def test_head_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match="expects a vector"):
        ProbabilisticHead(6, 7, spatial=False)(torch.randn(2, 6, 1, 1))


def test_reparameterise_samples_in_training_and_returns_mean_in_eval() -> None:
    torch.manual_seed(0)
    mu = torch.full((20000,), 2.0)
    logvar = torch.full((20000,), math.log(0.25))
    z = reparameterise(mu, logvar, training=True)
    assert abs(float(z.mean()) - 2.0) < 0.02
    assert abs(float(z.std()) - 0.5) < 0.02
    assert torch.equal(reparameterise(mu, logvar, training=False), mu)


def test_gaussian_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    v = torch.tensor([1.0, 2.0, 5.0, 11.0])
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
        torch.distributions.Normal(torch.zeros_like(mu), v.sqrt().view(-1, 1, 1, 1).expand_as(mu)),
    )
    assert torch.allclose(gaussian_kl(mu, logvar, v), expected.flatten(1).sum(1).mean(), atol=1e-5)
    scalar = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
        torch.distributions.Normal(torch.zeros_like(mu), math.sqrt(3.0)),
    )
    assert torch.allclose(gaussian_kl(mu, logvar, 3.0), scalar.flatten(1).sum(1).mean(), atol=1e-5)


def test_gaussian_kl_is_zero_at_the_prior() -> None:
    mu = torch.zeros(2, 4)
    logvar = torch.full((2, 4), math.log(7.0))
    assert float(gaussian_kl(mu, logvar, 7.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="positive"):
        gaussian_kl(mu, logvar, 0.0)
