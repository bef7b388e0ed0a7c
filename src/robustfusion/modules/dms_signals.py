"""The three per-sample reliability signals of Dynamic Modality Scheduling (METHODS.md §2).

Larger means "more" (more confident, more uncertain, more consistent with the other modalities).
Every signal lies in ``[0, 1]`` except the paper's confidence ``1 − H(p)``, which lies in
``[1 − log K, 1]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: The largest variance of a quantity in [0, 1]: the normaliser of the MC-dropout uncertainty.
MAX_VARIANCE = 0.25


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` over the last axis."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def entropy_confidence(logits: Tensor) -> Tensor:
    """Confidence ``c = 1 − H(p)`` (nats) of ``p = softmax(logits)`` as the paper writes it
    [paper]; ``[..., K] -> [...]``, in ``[1 − log K, 1]``."""
    return 1.0 - entropy(logits)


def normalised_entropy_confidence(logits: Tensor) -> Tensor:
    """Confidence ``c = 1 − H(p) / log K`` of ``p = softmax(logits)``; ``[..., K] -> [...]``."""
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ValueError("confidence needs at least two classes")
    return (1.0 - entropy(logits) / math.log(num_classes)).clamp(0.0, 1.0)


#: ``confidence=`` option values: the paper's ``1 − H(p)`` and the form bounded in ``[0, 1]``.
CONFIDENCES = {"entropy": entropy_confidence, "normalised": normalised_entropy_confidence}


def mc_dropout_uncertainty(mc_logits: Tensor, dim: int = -1) -> Tensor:
    """Uncertainty ``u = mean_k Var_t[p_k^(t)] / 0.25`` from ``T`` stochastic passes.

    ``mc_logits`` is ``[T, ..., K, ...]`` with the passes first and the classes on ``dim``
    (default last); the variance is the population variance over the ``T`` passes.
    """
    probs = torch.softmax(mc_logits, dim=dim)
    deviation = probs - probs.mean(dim=0, keepdim=True)
    variance = deviation.pow(2).mean(dim=0)  # population variance over the passes
    class_dim = dim if dim < 0 else dim - 1  # the passes axis is gone
    return (variance.mean(dim=class_dim) / MAX_VARIANCE).clamp(0.0, 1.0)


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


def prediction_agreement(logits: Tensor, present: Tensor, alone: float = 0.5) -> Tensor:
    """Agreement ``s_m = exp(−KL(p_m ‖ p̄_{−m}))`` of each modality's prediction with the mean
    prediction ``p̄_{−m}`` of the other present modalities [ours].

    Unlike the cosine form this is not symmetric, so it does not cancel in the scheduler's
    softmax when M = 2: a modality whose prediction puts its mass where the others also do
    scores high, one that claims classes the others rule out scores low (a diffuse, corrupted
    prediction against a confident clean one: low; the clean one against it: higher).

    Args:
        logits: ``[B, M, K]`` unimodal logits.
        present: ``BoolTensor[B, M]``; absent modalities are excluded and get 0.
        alone: value for a present modality with no other present modality.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    probs = log_p.exp()
    num_modalities = logits.shape[1]
    others = present.unsqueeze(1) & ~torch.eye(
        num_modalities, dtype=torch.bool, device=logits.device
    )  # [B, M (m), M (m')]
    count = others.sum(dim=2, keepdim=True)
    mean_others = torch.matmul(others.to(probs.dtype), probs) / count.clamp_min(1)  # [B, M, K]
    log_others = mean_others.clamp_min(torch.finfo(probs.dtype).tiny).log()
    divergence = (probs * (log_p - log_others)).sum(dim=-1)
    value = torch.exp(-divergence.clamp_min(0.0))
    value = torch.where(count.squeeze(2) > 0, value, torch.full_like(value, alone))
    return torch.where(present, value, torch.zeros_like(value)).to(logits.dtype)


def mean_over_positions(values: Tensor, batch: int) -> Tensor:
    """Per-pixel signals ``[B · P, M]`` (the ``P`` positions of each image in a row) averaged
    over each image's positions: ``[B, M]`` (DMS on segmentation)."""
    return values.view(batch, -1, values.shape[-1]).mean(dim=1)


#: ``consistency=`` option values: the paper's embedding similarity and the prediction agreement.
CONSISTENCIES = ("cosine", "agreement")
