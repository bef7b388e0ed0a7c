"""UDML's noise-intensity predictor (METHODS.md §3, [code] ``models/basic_model.py``).

``Linear(D, 256) -> Dropout(0.1) -> Linear(256, 1)`` on the detached pooled ``sigma`` of a
probabilistic representation; ``sigma_hat = exp(0.5 * out)`` is trained with
``MSE(sigma_hat, v)`` against the injected noise level ``v`` and gives the uncertainty
``s = sigma_hat^2``. :class:`StackedNoiseEstimators` runs ``M`` predictors of equal input size as
two batched matrix products [ours, for speed; the same function].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NoiseEstimator(nn.Module):
    """Predicts the injected noise level ``sigma_hat`` ``[B]`` from pooled standard deviations ``[B, D]``."""

    def __init__(self, in_dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, pooled_sigma: Tensor) -> Tensor:
        return torch.exp(0.5 * self.net(pooled_sigma).squeeze(-1))


class StackedNoiseEstimators(nn.Module):
    """``M`` :class:`NoiseEstimator` of equal input size: ``[M, B, D] -> sigma_hat [M, B]``."""

    def __init__(self, count: int, in_dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.count, self.in_dim = count, in_dim
        b1, b2 = 1.0 / math.sqrt(in_dim), 1.0 / math.sqrt(hidden)
        self.weight1 = nn.Parameter(torch.empty(count, in_dim, hidden).uniform_(-b1, b1))
        self.bias1 = nn.Parameter(torch.empty(count, 1, hidden).uniform_(-b1, b1))
        self.weight2 = nn.Parameter(torch.empty(count, 1, hidden).uniform_(-b2, b2))
        self.bias2 = nn.Parameter(torch.empty(count, 1).uniform_(-b2, b2))
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout

    def forward(self, pooled_sigma: Tensor) -> Tensor:
        if pooled_sigma.dim() != 3 or pooled_sigma.shape[0] != self.count:
            raise ValueError(
                f"StackedNoiseEstimators expects [{self.count}, B, {self.in_dim}], "
                f"got shape {tuple(pooled_sigma.shape)}"
            )
        hidden = torch.baddbmm(self.bias1, pooled_sigma, self.weight1)
        if self.training and self.dropout > 0:
            hidden = fast_dropout(hidden, self.dropout)
        # A product with one output column: multiply-and-sum is cheaper than a batched matmul.
        out = (hidden * self.weight2).sum(dim=-1) + self.bias2
        return torch.exp(0.5 * out)


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout (training) from 16 random bits per element.

    The same distribution as ``F.dropout`` up to the drop probability, rounded to a multiple of
    ``2^-16`` (0.1 -> 0.100006); the bits come from ``torch.randint`` on int64 words of the global
    generator: on a CPU the draw costs about a tenth of ``bernoulli_``'s [ours, for speed].
    """
    threshold = round(p * 65536)
    if threshold == 0:
        return x
    words = (x.numel() + 3) // 4
    bits = torch.randint(-(2**63), 2**63 - 1, (words,), dtype=torch.int64, device=x.device)
    draws = bits.view(torch.int16)[: x.numel()].view(x.shape)
    keep = draws >= threshold - 32768
    return x * (keep * (65536.0 / (65536 - threshold)))


def noise_level_loss(sigma_hat: Tensor, level: Tensor) -> Tensor:
    """``MSE(sigma_hat, v)`` (the paper's weight 0.1 is applied by the caller)."""
    return F.mse_loss(sigma_hat, level.to(sigma_hat.dtype))


def pool_map(x: Tensor) -> Tensor:
    """Global average over spatial axes: ``[B, C, h, w] -> [B, C]``; vectors pass through."""
    return x.flatten(2).mean(dim=2) if x.dim() > 2 else x
