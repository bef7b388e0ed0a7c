"""Evidential (Dirichlet) opinions and their reduced Dempster-Shafer combination (TMC).

Han et al., "Trusted Multi-View Classification", ICLR 2021. Notation of the paper: evidence
``e >= 0`` of ``K`` classes, ``alpha = e + 1`` (Eq. 1-2), Dirichlet strength ``S = sum alpha``,
belief ``b = e / S`` and uncertainty ``u = K / S`` (so ``sum b + u = 1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError

#: Non-negative activations that turn head outputs into evidence. The paper names ReLU; the
#: authors' code (and our default) uses softplus, which keeps a gradient for negative inputs.
EVIDENCE_ACTIVATIONS = ("softplus", "relu", "exp")


def check_evidence_options(method: str, evidence: str, annealing_epochs: int) -> None:
    """One-line ``ConfigError`` for an unknown activation or an annealing shorter than 1 epoch."""
    if evidence not in EVIDENCE_ACTIVATIONS:
        raise ConfigError(
            f"{method}: unknown evidence activation {evidence!r}; choose one of "
            f"{', '.join(EVIDENCE_ACTIVATIONS)}"
        )
    if annealing_epochs < 1:
        raise ConfigError(f"{method}: annealing_epochs must be >= 1, got {annealing_epochs}")


def view_heads(
    modalities: Sequence[str], feature_dims: Mapping[str, int], num_classes: int
) -> nn.ModuleDict:
    """One linear evidence head per view (TMC's and RCML's per-view classifiers)."""
    return nn.ModuleDict({m: nn.Linear(feature_dims[m], num_classes) for m in modalities})


def kl_annealing(epoch: int, annealing_epochs: int) -> float:
    """``lambda_t = min(1, t / annealing_epochs)`` with ``t = epoch + 1`` (1-based, as the
    authors' code of TMC and RCML)."""
    return min(1.0, (epoch + 1) / annealing_epochs)


def evidence_from_logits(logits: Tensor, activation: str = "softplus") -> Tensor:
    """Non-negative evidence ``e = act(logits)`` (``exp`` is clamped to avoid overflow)."""
    if activation == "softplus":
        return F.softplus(logits)
    if activation == "relu":
        return F.relu(logits)
    if activation == "exp":
        return torch.exp(logits.clamp(-10.0, 10.0))
    raise ValueError(f"unknown evidence activation {activation!r}; choose {EVIDENCE_ACTIVATIONS}")


def opinion(alpha: Tensor) -> tuple[Tensor, Tensor]:
    """Belief ``b = (alpha - 1) / S`` ``[B, K]`` and uncertainty ``u = K / S`` ``[B, 1]`` (Eq. 1)."""
    strength = alpha.sum(dim=1, keepdim=True)
    return (alpha - 1.0) / strength, alpha.shape[1] / strength


def combine_two(alpha1: Tensor, alpha2: Tensor) -> Tensor:
    """The reduced Dempster-Shafer combination of two Dirichlet opinions (TMC Definition 3.1).

    Conflict ``C = sum_{i != j} b1_i b2_j``; ``b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - C)``;
    ``u = u1 u2 / (1 - C)``; the result is returned as ``alpha = b S + 1`` with ``S = K / u`` (Eq. 4).
    A vacuous opinion (``alpha = 1``, ``u = 1``) is the identity of this combination.
    """
    b1, u1 = opinion(alpha1)
    b2, u2 = opinion(alpha2)
    total = b1.sum(dim=1, keepdim=True) * b2.sum(dim=1, keepdim=True)
    agreement = (b1 * b2).sum(dim=1, keepdim=True)
    conflict = total - agreement
    scale = 1.0 - conflict
    belief = (b1 * b2 + b1 * u2 + b2 * u1) / scale
    uncertainty = u1 * u2 / scale
    strength = alpha1.shape[1] / uncertainty
    return belief * strength + 1.0


def combine(alphas: list[Tensor]) -> Tensor:
    """Combine ``M >= 1`` opinions sequentially: ``((a1 + a2) + a3) + ...`` (TMC Eq. 5)."""
    if not alphas:
        raise ValueError("combine needs at least one opinion")
    combined = alphas[0]
    for alpha in alphas[1:]:
        combined = combine_two(combined, alpha)
    return combined


def dirichlet_kl_to_uniform(alpha: Tensor) -> Tensor:
    """``KL(Dir(alpha) || Dir(1))`` per sample ``[B]`` (the regulariser of TMC Eq. 8)."""
    num_classes = alpha.shape[1]
    strength = alpha.sum(dim=1)
    log_beta = torch.lgamma(strength) - torch.lgamma(alpha).sum(dim=1)
    log_beta_uniform = -torch.lgamma(torch.tensor(float(num_classes), dtype=alpha.dtype))
    digamma_term = ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength)[:, None])).sum(
        dim=1
    )
    return digamma_term + log_beta + log_beta_uniform.to(alpha.device)


def evidential_loss(alpha: Tensor, target: Tensor, kl_weight: float) -> Tensor:
    """Per-sample TMC loss ``[B]``: the digamma cross-entropy plus the annealed KL (Eq. 6-9).

    ``L_ace = sum_j y_j (psi(S) - psi(alpha_j))`` (Eq. 6) and ``lambda_t KL(Dir(alpha~) || Dir(1))``
    with ``alpha~ = y + (1 - y) * alpha`` (the target's evidence removed, Eq. 8).
    """
    one_hot = F.one_hot(target, alpha.shape[1]).to(alpha.dtype)
    strength = alpha.sum(dim=1, keepdim=True)
    ace = (one_hot * (torch.digamma(strength) - torch.digamma(alpha))).sum(dim=1)
    if kl_weight == 0.0:
        return ace
    alpha_tilde = one_hot + (1.0 - one_hot) * alpha
    return ace + kl_weight * dirichlet_kl_to_uniform(alpha_tilde)
