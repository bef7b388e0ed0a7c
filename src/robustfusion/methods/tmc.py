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
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, normalise_weights
from robustfusion.modules.evidential import (
    EVIDENCE_ACTIVATIONS,
    combine,
    evidence_from_logits,
    evidential_loss,
    opinion,
)
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput


@METHODS.register(
    "tmc", "Trusted Multi-view Classification: Dirichlet evidence per view, Dempster-Shafer fusion"
)
class TMC(Method):
    """Options: ``annealing_epochs`` (50), ``evidence`` (``softplus`` | ``relu`` | ``exp``)."""

    def __init__(
        self, spec: MethodSpec, annealing_epochs: int = 50, evidence: str = "softplus"
    ) -> None:
        super().__init__(spec)
        if evidence not in EVIDENCE_ACTIVATIONS:
            raise ConfigError(
                f"tmc: unknown evidence activation {evidence!r}; choose one of "
                f"{', '.join(EVIDENCE_ACTIVATIONS)}"
            )
        if annealing_epochs < 1:
            raise ConfigError(f"tmc: annealing_epochs must be >= 1, got {annealing_epochs}")
        self.annealing_epochs = int(annealing_epochs)
        self.evidence = evidence
        self.heads = nn.ModuleDict(
            {m: nn.Linear(spec.feature_dims[m], spec.num_classes) for m in self.modalities}
        )
        self.register_buffer("kl_weight", torch.tensor(1.0))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """``lambda_t = min(1, t / annealing_epochs)`` with ``t = epoch + 1`` (1-based, as the code)."""
        self.kl_weight.fill_(min(1.0, (epoch + 1) / self.annealing_epochs))

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
        combined = combine(alphas)
        extras["alpha"] = combined
        confidence = 1.0 - torch.stack(uncertainties, dim=1)
        return FusionOutput(
            logits=torch.log(combined / combined.sum(dim=1, keepdim=True)),
            weights=normalise_weights(confidence, present, self.modalities),
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
