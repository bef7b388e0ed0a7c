"""TMC: Trusted Multi-view Classification (Han et al., ICLR 2021), METHODS.md §4.

Each modality's features go through a linear head and a non-negative activation to give evidence
``e_m`` (softplus by default, as in the authors' code; the paper names ReLU: option
``evidence="relu"``); ``alpha_m = e_m + 1`` is a Dirichlet opinion (Eq. 1-2). The opinions are
fused by the reduced Dempster-Shafer combination applied sequentially (Definition 3.1, Eq. 4-5).
Loss (Eq. 9): for every view and for the combined opinion, the digamma cross-entropy plus
``lambda_t KL(Dir(alpha~) || Dir(1))`` with ``lambda_t = min(1, t / annealing_epochs)`` and ``t``
the 1-based epoch (the code's ``global_step``; default 50 as in the paper).

Deviations, all documented: an absent view contributes a vacuous opinion (``alpha = 1``, ``u = 1``,
the identity of the combination) and no loss term. ``logits`` are the log of the combined
Dirichlet's expected probabilities ``alpha / S`` (so softmax(logits) is that probability);
``weights`` are each view's ``1 - u_m`` normalised over present views.

Weight swaps (``has_dynamic_weights``; ``weights="uniform"`` trains the uniform twin). TMC has no
explicit weights: each view enters the combination with its own uncertainty, and its confidence
``c_m = 1 - u_m`` is what decides how much it moves the result. So the reported weights
``w = c / sum c`` pass through :meth:`~robustfusion.methods.base.Method.swap_weights`, and a swapped
``w'`` is mapped back to opinions [ours]: view ``m`` keeps its belief shape ``b_m / c_m`` (which
class it favours, and how sharply) and gets the confidence
``c'_m = min(w'_m * sum_k c_k, max_k c_k)`` (``k`` over present views; the row's total confidence is
kept, but no view becomes more confident than the sample's most confident view), i.e.
``b'_m = c'_m b_m / c_m`` and ``u'_m = 1 - c'_m``. Hence ``learned`` is the identity; ``uniform``
rescales every present view's opinion to the sample's mean uncertainty; ``oracle`` makes a
corrupted view vacuous (``u = 1``, the identity of the combination: the lowest weight the method
allows) and lifts the clean views to the highest confidence among the sample's views. A view with
no evidence at all (``c_m = 0``) keeps a uniform belief shape. The per-view loss terms always use
the views' own opinions; the combined term uses the swapped ones. ``FusionOutput.weights`` reports
``c' / sum c'`` (equal to ``w'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from robustfusion.accepts import Accepts, integer
from robustfusion.methods.base import (
    Method,
    MethodSpec,
    normalise_weights,
    trained_weights_option,
)
from robustfusion.modules.evidential import (
    check_evidence_options,
    combine,
    evidence_from_logits,
    evidential_loss,
    kl_annealing,
    opinion,
    view_heads,
)
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput


@METHODS.register(
    "tmc", "Trusted Multi-view Classification: Dirichlet evidence per view, Dempster-Shafer fusion"
)
class TMC(Method):
    """Options: ``annealing_epochs`` (50), ``evidence`` (``softplus`` | ``relu`` | ``exp``),
    ``weights`` (``learned`` | ``uniform``: the uniform twin)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {"annealing_epochs": integer(1, 100_000)}

    has_dynamic_weights: ClassVar[bool] = True

    def __init__(
        self,
        spec: MethodSpec,
        annealing_epochs: int = 50,
        evidence: str = "softplus",
        weights: str = "learned",
    ) -> None:
        super().__init__(spec)
        self.trained_weights = trained_weights_option("tmc", weights)
        check_evidence_options("tmc", evidence, annealing_epochs)
        self.annealing_epochs = int(annealing_epochs)
        self.evidence = evidence
        self.heads = view_heads(self.modalities, spec.feature_dims, spec.num_classes)
        self.register_buffer("kl_weight", torch.tensor(1.0))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """The KL term's weight for this epoch (:func:`kl_annealing`)."""
        self.kl_weight.fill_(kl_annealing(epoch, self.annealing_epochs))

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        alphas: list[Tensor] = []
        uncertainties: list[Tensor] = []
        unimodal: dict[str, Tensor] = {}
        extras: dict[str, Tensor] = {}
        for m in self.modalities:
            alpha = evidence_from_logits(self.heads[m](features[m]), self.evidence) + 1.0
            alpha = torch.where(present[m].unsqueeze(1), alpha, torch.ones_like(alpha))
            _, u = opinion(alpha)
            alphas.append(alpha)
            uncertainties.append(u.squeeze(1))
            unimodal[m] = torch.log(alpha / alpha.sum(dim=1, keepdim=True))
            extras[f"alpha/{m}"] = alpha
        confidence = 1.0 - torch.stack(uncertainties, dim=1)  # [B, M]; 0 where absent
        learned = normalise_weights(confidence, present, self.modalities)
        weights = learned
        if self.effective_weight_mode() != "learned":
            weights = self.swap_weights(learned, present)
            alphas = rescale_opinions(alphas, confidence, weights)
        combined = combine(alphas)
        extras["alpha"] = combined
        return FusionOutput(
            logits=torch.log(combined / combined.sum(dim=1, keepdim=True)),
            weights=weights,
            modalities=self.modalities,
            unimodal_logits=unimodal,
            extras=extras,
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        weight = float(self.kl_weight)
        total = evidential_loss(output.extras["alpha"], batch.target, weight)
        for m in self.modalities:
            per_view = evidential_loss(output.extras[f"alpha/{m}"], batch.target, weight)
            total = total + per_view * batch.present[m].to(per_view.dtype)
        return {"evidential": total.mean()}

    def logged_values(self) -> dict[str, float]:
        return {"tmc/kl_weight": float(self.kl_weight)}


def rescale_opinions(alphas: list[Tensor], confidence: Tensor, weights: Tensor) -> list[Tensor]:
    """Opinions whose confidences follow ``weights`` (``[B, M]``, sum 1 over present views).

    ``c'_m = min(w_m * sum_k c_k, max_k c_k)``; each view keeps its belief shape ``b_m / c_m``
    (uniform where ``c_m = 0``) and gets ``b' = c' b / c``, ``u' = 1 - c'``, returned as Dirichlet
    parameters ``alpha' = b' K / u' + 1`` (``alpha' = 1``, vacuous, where ``c' = 0``).
    """
    total = confidence.sum(dim=1, keepdim=True)
    ceiling = confidence.max(dim=1, keepdim=True).values
    target = torch.minimum(weights.to(confidence.dtype) * total, ceiling)  # [B, M]
    out: list[Tensor] = []
    for i, alpha in enumerate(alphas):
        num_classes = alpha.shape[1]
        evidence = alpha - 1.0
        mass = evidence.sum(dim=1, keepdim=True)
        shape = torch.where(
            mass > 0, evidence / mass.clamp_min(torch.finfo(alpha.dtype).tiny), 1.0 / num_classes
        )  # b / c: the belief distribution over classes
        c = target[:, i : i + 1]
        uncertainty = (1.0 - c).clamp_min(torch.finfo(alpha.dtype).eps)
        out.append(shape * c * (num_classes / uncertainty) + 1.0)
    return out
