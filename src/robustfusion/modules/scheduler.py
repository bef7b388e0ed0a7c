"""Modality schedulers of DMS (METHODS.md §2): per-sample signals ``[B, M]`` -> weights ``[B, M]``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_softmax(logits: Tensor, present: Tensor) -> Tensor:
    """Softmax over the present modalities; absent ones (and all-absent rows) get weight 0."""
    filled = logits.masked_fill(~present, float("-inf"))
    weights = torch.softmax(filled, dim=-1)
    return torch.where(present, weights, torch.zeros_like(weights))


class RuleScheduler(nn.Module):
    """``w = softmax_m((a·c_m − b·u_m + g·s_m) / τ)`` over the present modalities (no parameters)."""

    def __init__(self, a: float = 1.0, b: float = 1.0, g: float = 1.0, tau: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"the temperature tau must be > 0, got {tau}")
        self.a, self.b, self.g, self.tau = float(a), float(b), float(g), float(tau)

    def forward(
        self, confidence: Tensor, uncertainty: Tensor, consistency: Tensor, present: Tensor
    ) -> Tensor:
        score = self.a * confidence - self.b * uncertainty + self.g * consistency
        return masked_softmax(score / self.tau, present)


class LearnedScheduler(nn.Module):
    """``w = masked_softmax(MLP([c; u; s]))`` with an MLP ``3M -> hidden -> M``.

    The signals of absent modalities enter as 0. The last layer starts at zero, so an untrained
    scheduler gives uniform weights (plain shared-space fusion) [ours].
    """

    def __init__(self, num_modalities: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3 * num_modalities, hidden), nn.ReLU(), nn.Linear(hidden, num_modalities)
        )
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(
        self, confidence: Tensor, uncertainty: Tensor, consistency: Tensor, present: Tensor
    ) -> Tensor:
        signals = torch.cat([confidence, uncertainty, consistency], dim=1)
        signals = signals * present.repeat(1, 3).to(signals.dtype)
        return masked_softmax(self.net(signals), present)


def build_scheduler(
    kind: str,
    num_modalities: int,
    *,
    a: float = 1.0,
    b: float = 1.0,
    g: float = 1.0,
    tau: float = 1.0,
    hidden: int = 64,
) -> nn.Module:
    """``"rule"`` -> :class:`RuleScheduler`, ``"learned"`` -> :class:`LearnedScheduler`."""
    if kind == "rule":
        return RuleScheduler(a, b, g, tau)
    if kind == "learned":
        return LearnedScheduler(num_modalities, hidden)
    raise ValueError(f"unknown scheduler {kind!r}: choose 'rule' or 'learned'")
