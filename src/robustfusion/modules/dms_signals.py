"""The three per-sample reliability signals of Dynamic Modality Scheduling (METHODS.md §2).

Each signal lies in ``[0, 1]``, larger meaning "more" (more confident, more uncertain, more
consistent with the other modalities).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: The largest variance of a quantity in [0, 1]: the normaliser of the MC-dropout uncertainty.
MAX_VARIANCE = 0.25


def normalised_entropy_confidence(logits: Tensor) -> Tensor:
    """Confidence ``c = 1 − H(p) / log K`` of ``p = softmax(logits)``; ``[..., K] -> [...]``."""
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ValueError("confidence needs at least two classes")
    log_p = F.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return (1.0 - entropy / math.log(num_classes)).clamp(0.0, 1.0)


def mc_dropout_uncertainty(mc_logits: Tensor) -> Tensor:
    """Uncertainty ``u = mean_k Var_t[p_k^(t)] / 0.25`` from ``T`` stochastic passes.

    ``mc_logits`` is ``[T, B, K]``; the variance is the population variance over the ``T`` passes.
    """
    probs = torch.softmax(mc_logits, dim=-1)
    return (probs.var(dim=0, unbiased=False).mean(dim=-1) / MAX_VARIANCE).clamp(0.0, 1.0)


def semantic_consistency(z: Tensor, present: Tensor, alone: float = 0.5) -> Tensor:
    """Consistency ``s_m = mean_{m' ≠ m, present} (1 + cos(z_m, z_m')) / 2``.

    Args:
        z: ``[B, M, S]`` embeddings in the shared space.
        present: ``BoolTensor[B, M]``; absent modalities are excluded and get 0.
        alone: value for a present modality with no other present modality to compare with
            (the neutral ``cos = 0``) [ours].
    """
    unit = F.normalize(z, dim=-1)
    similarity = (1.0 + unit @ unit.transpose(1, 2)) / 2.0  # [B, M, M]
    num_modalities = z.shape[1]
    others = present.unsqueeze(1) & ~torch.eye(num_modalities, dtype=torch.bool, device=z.device)
    others = others & present.unsqueeze(2)
    count = others.sum(dim=2)
    total = (similarity * others.to(similarity.dtype)).sum(dim=2)
    value = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, alone))
    return torch.where(present, value, torch.zeros_like(value))
