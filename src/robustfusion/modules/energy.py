"""Energy-based confidence and the history-driven ranking regulariser of QMF.

Zhang et al., "Provable Dynamic Fusion for Low-Quality Multimodal Learning" (QMF), ICML 2023.
The energy of a classifier's logits is ``E(x) = -T logsumexp(f(x) / T)`` (Liu et al., 2020); QMF
uses the negative energy as a confidence, scaled by ``1/10`` in the authors' code.
The regulariser (borrowed from Moon et al.'s correctness ranking loss) asks that, of two samples,
the one with the larger accumulated training loss has the lower confidence.
"""

from __future__ import annotations

import torch
from torch import Tensor


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``E = -T logsumexp(logits / T)`` per sample ``[B]`` (lower energy = more confident)."""
    return -temperature * torch.logsumexp(logits / temperature, dim=1)


def energy_confidence(logits: Tensor, temperature: float = 1.0, scale: float = 0.1) -> Tensor:
    """QMF's confidence ``scale * (-E)`` ``[B]`` (``scale = 1/10`` in the authors' code)."""
    return -scale * energy_score(logits, temperature)


def ranking_targets(history_i: Tensor, history_j: Tensor, span: Tensor) -> tuple[Tensor, Tensor]:
    """Sign ``t = sign(h_i - h_j)`` and margin ``|h_i - h_j| / span`` of two history values.

    ``h`` is the accumulated per-sample loss; ``span`` normalises it (the code's
    ``correctness_normalize``; see :mod:`robustfusion.methods.qmf` for our choice of span).
    """
    target = torch.sign(history_i - history_j)
    margin = (history_i - history_j).abs() / span.clamp_min(1e-12)
    return target, margin


def ranking_loss(
    confidence: Tensor,
    history: Tensor,
    span: Tensor,
    valid: Tensor | None = None,
    margin_sign: float = 1.0,
) -> Tensor:
    """QMF's ranking regulariser on the pairs ``(i, i+1 mod B)`` of a batch (the code's ``roll``).

    ``L = mean max(0, t (c_i - c_j) + s * margin)`` with ``t = sign(h_i - h_j)``: a sample with a
    larger accumulated loss should have a confidence lower by at least the margin (``s = +1``, the
    paper's form). The authors' released code ends up with ``s = -1`` (the margin becomes a slack);
    pass ``margin_sign=-1`` for it. Pairs with ``t = 0`` (equal history) cost nothing, as in the
    code. ``valid`` masks samples out (absent modality); a pair counts when both are valid.
    """
    other_conf = torch.roll(confidence, -1)
    other_hist = torch.roll(history, -1)
    target, margin = ranking_targets(history, other_hist, span)
    loss = torch.relu(target * (confidence - other_conf) + margin_sign * margin)
    loss = loss * (target != 0).to(loss.dtype)
    if valid is None:
        return loss.mean()
    pair_valid = (valid & torch.roll(valid, -1)).to(loss.dtype)
    return (loss * pair_valid).sum() / pair_valid.sum().clamp_min(1.0)
