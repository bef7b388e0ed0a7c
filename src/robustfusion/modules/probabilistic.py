"""Probabilistic representation heads: a Gaussian ``N(mu, sigma^2)`` per feature (UDML, PE).

UDML (METHODS.md §3, [code]): ``mu = BN(Conv1x1(f))`` and ``logvar = BN(Conv1x1(f))`` on the last
feature map, ``Linear + LayerNorm`` for vector features; ``z = mu + eps * sigma`` in training and
``z = mu`` in evaluation; a KL regulariser towards ``N(0, v)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ProbabilisticHead(nn.Module):
    """Maps features to ``(mu, logvar)`` of the same layout.

    Args:
        in_dim_or_channels: channels ``C`` of a map ``[B, C, h, w]`` (``spatial=True``) or the
            size ``D`` of a vector ``[B, D]``.
        out_dim: channels (or size) of ``mu`` and ``logvar``.
        spatial: ``True`` for maps (1x1 convolution + BatchNorm2d), ``False`` for vectors
            (Linear + LayerNorm).
        vector_norm: normalisation of the vector branches: ``"layer"`` (the paper's LayerNorm)
            or ``"batch"`` (BatchNorm1d, [ours]: LayerNorm removes each sample's overall scale of
            ``logvar``, so ``sigma`` cannot grow uniformly with a sample's noise; BatchNorm, as
            on maps, keeps the differences between samples).
    """

    def __init__(
        self, in_dim_or_channels: int, out_dim: int, spatial: bool, vector_norm: str = "layer"
    ) -> None:
        super().__init__()
        if vector_norm not in ("layer", "batch"):
            raise ValueError(f"vector_norm must be 'layer' or 'batch', got {vector_norm!r}")
        self.spatial = spatial
        self.out_dim = out_dim
        norm = nn.LayerNorm if vector_norm == "layer" else nn.BatchNorm1d
        if spatial:
            self.mu: nn.Module = nn.Sequential(
                nn.Conv2d(in_dim_or_channels, out_dim, kernel_size=1), nn.BatchNorm2d(out_dim)
            )
            self.logvar: nn.Module = nn.Sequential(
                nn.Conv2d(in_dim_or_channels, out_dim, kernel_size=1), nn.BatchNorm2d(out_dim)
            )
        else:
            self.mu = nn.Sequential(nn.Linear(in_dim_or_channels, out_dim), norm(out_dim))
            self.logvar = nn.Sequential(nn.Linear(in_dim_or_channels, out_dim), norm(out_dim))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        expected = 4 if self.spatial else 2
        if features.dim() != expected:
            kind = "a map [B, C, h, w]" if self.spatial else "a vector [B, D]"
            raise ValueError(
                f"ProbabilisticHead(spatial={self.spatial}) expects {kind}, "
                f"got shape {tuple(features.shape)}"
            )
        return self.mu(features), self.logvar(features)


def reparameterise(mu: Tensor, logvar: Tensor, training: bool) -> Tensor:
    """``z = mu + eps * exp(0.5 * logvar)`` with ``eps ~ N(0, I)`` in training; ``mu`` otherwise."""
    if not training:
        return mu
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def gaussian_kl(mu: Tensor, logvar: Tensor, prior_var: float | Tensor = 1.0) -> Tensor:
    """``KL(N(mu, sigma^2) || N(0, v))`` per element, summed over features, mean over the batch.

    ``KL = 0.5 * (log v - logvar + (sigma^2 + mu^2) / v - 1)``. ``prior_var`` is a scalar or a
    per-sample ``[B]`` tensor (UDML's injected noise level ``v``), broadcast over features.
    """
    if isinstance(prior_var, Tensor):
        v = prior_var.to(mu.dtype).reshape(-1, *([1] * (mu.dim() - 1)))
        log_v = torch.log(v)
    else:
        if prior_var <= 0:
            raise ValueError(f"prior variance must be positive, got {prior_var}")
        v = torch.as_tensor(prior_var, dtype=mu.dtype, device=mu.device)
        log_v = torch.as_tensor(math.log(prior_var), dtype=mu.dtype, device=mu.device)
    kl = 0.5 * (log_v - logvar + (logvar.exp() + mu.pow(2)) / v - 1.0)
    return kl.flatten(1).sum(dim=1).mean()
