"""UDML's noise-intensity predictor (METHODS.md §3, [code]).

``Linear(D, 256) -> Dropout(0.1) -> Linear(256, 1)`` on the detached pooled ``sigma`` of a
probabilistic representation; ``sigma_hat = exp(0.5 * out)`` is trained with
``MSE(sigma_hat, v)`` against the injected noise level ``v`` and gives the uncertainty
``s = sigma_hat^2``.
"""

from __future__ import annotations

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


def noise_level_loss(sigma_hat: Tensor, level: Tensor) -> Tensor:
    """``MSE(sigma_hat, v)`` (the paper's weight 0.1 is applied by the caller)."""
    return F.mse_loss(sigma_hat, level.to(sigma_hat.dtype))


def pool_map(x: Tensor) -> Tensor:
    """Global average over spatial axes: ``[B, C, h, w] -> [B, C]``; vectors pass through."""
    return x.flatten(2).mean(dim=2) if x.dim() > 2 else x
