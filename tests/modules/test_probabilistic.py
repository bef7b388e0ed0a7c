"""Tests of the probabilistic representation heads, reparameterisation and Gaussian KL."""

from __future__ import annotations

import math

import pytest
import torch

from robustfusion.modules.probabilistic import (
    ProbabilisticHead,
    StackedProbabilisticHeads,
    gaussian_kl,
    gaussian_kl_rows,
    kl_from_statistics,
    kl_sufficient_statistics,
    reparameterise,
)


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


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_stacked_heads_match_separate_vector_heads(norm: str) -> None:
    torch.manual_seed(0)
    stacked = StackedProbabilisticHeads(3, 6, 4, norm=norm)
    separate = [ProbabilisticHead(6, 4, spatial=False, vector_norm=norm) for _ in range(3)]
    with torch.no_grad():
        stacked.bias.normal_()
        if norm == "layer":
            stacked.norm_weight.normal_()
            stacked.norm_bias.normal_()
        for j, head in enumerate(separate):
            for k, branch in enumerate((head.mu, head.logvar)):
                branch[0].weight.copy_(stacked.weight[j, :, 4 * k : 4 * k + 4].t())
                branch[0].bias.copy_(stacked.bias[j, 0, 4 * k : 4 * k + 4])
                if norm == "layer":
                    branch[1].weight.copy_(stacked.norm_weight[j, 0, k])
                    branch[1].bias.copy_(stacked.norm_bias[j, 0, k])
    x = torch.randn(3, 10, 6)
    mu, logvar = stacked(x)
    assert mu.shape == logvar.shape == (3, 10, 4)
    assert mu.is_contiguous() and logvar.is_contiguous()
    for j, head in enumerate(separate):
        m, lv = head(x[j])
        assert torch.allclose(mu[j], m, atol=1e-5) and torch.allclose(logvar[j], lv, atol=1e-5)
    # The deterministic variant feeds the logvar branch detached features only.
    features = x.clone().requires_grad_(True)
    _, logvar = stacked(features, detach_logvar_input=True)
    logvar.sum().backward()
    assert features.grad is None or float(features.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="expects"):
        stacked(torch.randn(2, 10, 6))
    with pytest.raises(ValueError, match="norm"):
        StackedProbabilisticHeads(2, 6, 4, norm="group")


def test_map_head_layer_norm_option() -> None:
    head = ProbabilisticHead(8, 5, spatial=True, map_norm="layer")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in head.modules())
    mu, _ = head(torch.randn(2, 8, 3, 3))
    # One group: each sample's map has ~zero mean over (C, h, w) at initialisation.
    assert torch.allclose(mu.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    with pytest.raises(ValueError, match="map_norm"):
        ProbabilisticHead(8, 5, spatial=True, map_norm="instance")


def test_kl_from_sufficient_statistics_matches_the_direct_kl() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    v = torch.tensor([1.0, 2.0, 5.0, 11.0])
    stats = kl_sufficient_statistics(mu, logvar)
    assert stats.shape == (4, 2)
    direct = gaussian_kl_rows(mu, logvar, v)
    assert torch.allclose(kl_from_statistics(stats, 12, v), direct, atol=1e-4)
    # A stack [M, B, D] with row_dims=2, and a reused std.
    mu, logvar = torch.randn(3, 5, 7), torch.randn(3, 5, 7)
    v = torch.rand(3, 5) * 10 + 1
    stats = kl_sufficient_statistics(mu, logvar, torch.exp(0.5 * logvar), row_dims=2)
    assert torch.allclose(
        kl_from_statistics(stats, 7, v), gaussian_kl_rows(mu, logvar, v), atol=1e-4
    )


def test_layer_mu_normalises_mu_per_sample_and_keeps_the_scale_of_logvar() -> None:
    # vector_norm="layer_mu": LayerNorm on mu, BatchNorm on logvar, stacked and separate alike
    torch.manual_seed(0)
    stacked = StackedProbabilisticHeads(2, 6, 4, norm="layer_mu")
    separate = [ProbabilisticHead(6, 4, spatial=False, vector_norm="layer_mu") for _ in range(2)]
    assert isinstance(separate[0].mu[1], torch.nn.LayerNorm)
    assert isinstance(separate[0].logvar[1], torch.nn.BatchNorm1d)
    with torch.no_grad():
        for j, head in enumerate(separate):
            for k, branch in enumerate((head.mu, head.logvar)):
                branch[0].weight.copy_(stacked.weight[j, :, 4 * k : 4 * k + 4].t())
                branch[0].bias.copy_(stacked.bias[j, 0, 4 * k : 4 * k + 4])
    x = torch.randn(2, 16, 6)
    x[:, :8] *= 5.0  # half the samples at five times the scale
    mu, logvar = stacked(x)
    for j, head in enumerate(separate):
        m, lv = head(x[j])
        assert torch.allclose(mu[j], m, atol=1e-5) and torch.allclose(logvar[j], lv, atol=1e-5)
    # every sample's mu has zero mean and unit variance over its features; logvar does not
    assert torch.allclose(mu.mean(dim=2), torch.zeros(2, 16), atol=1e-5)
    spread = logvar.pow(2).mean(dim=2)
    assert not torch.allclose(spread[:, :8], spread[:, 8:], atol=0.1)
