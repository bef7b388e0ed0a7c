"""ECML: Evidential Conflictive Multi-view Learning (Xu et al., "Reliable Conflictive Multi-View
Learning", AAAI 2024; code github.com/jiajunsi/RCML), TMC's lineage.

Each view's features go through a linear head and softplus to give evidence ``e_v`` (the
authors' ``EvidenceCollector`` with one layer: ``Linear(D, K)`` + ``Softplus``); ``alpha_v =
e_v + 1`` is a Dirichlet opinion with belief ``b_v = e_v / S_v``, uncertainty ``u_v = K / S_v``
and projected probability ``p_v = alpha_v / S_v``.

**Conflictive opinion aggregation.** The pairwise rule (the paper's averaging belief fusion; its
appendix, Eq. 2-3: ``b = (b_i u_j + b_j u_i) / (u_i + u_j)``, ``u = 2 u_i u_j / (u_i + u_j)``)
is, by the appendix's Proposition 1, the mean of the two views' evidence
``e = (e_i + e_j) / 2``. Over ``V`` views:

* ``aggregation="mean"`` (default) [ours, after the paper]: ``e_A = (1 / V) sum_v e_v`` over the
  present views, the averaging fusion of all opinions at once (Jøsang's multi-source averaging
  fusion is the mean of the evidence): every view counts the same and the result does not depend
  on the order of the views.
* ``aggregation="running"`` [code]: the authors' ``model.py``, the pairwise rule applied in turn,
  ``e <- (e_v + e) / 2`` over the present views in modality order. It is a true mean only for
  two views; with ``V`` views the ``k``-th gets ``2^-(V-k+1)`` (``2^-(V-1)`` for the first):
  six views get ``1/32, 1/32, 1/16, 1/8, 1/4, 1/2``, so the result depends on the view order
  (their README concedes it). On mfeat the authors' order is ``pix, fou, fac, zer, kar, mor``
  (``dataset_options: {views: pix,fou,fac,zer,kar,mor}``); ours is ``fou, fac, kar, pix, zer,
  mor``. For two views the two rules coincide.

**Loss** (the authors' ``loss_function.get_loss``): for the aggregated opinion and every view,
the digamma cross-entropy plus ``lambda_t KL(Dir(alpha~) || Dir(1))`` (TMC's Eq. 6-9,
:func:`~robustfusion.modules.evidential.evidential_loss`), ``lambda_t = min(1, t / annealing)``
with ``t`` the 1-based epoch (``annealing_epochs`` 50, the code's ``annealing_step``); their
sum is divided by ``V + 1``; plus ``gamma`` (1, the code's value) times the conflictive degree
(the consistency term)::

    L_con = 1 / (V - 1) * sum_i sum_{j != i} cp(i, j) * cc(i, j),
    cp(i, j) = 1/2 sum_k |p_i,k - p_j,k|,   cc(i, j) = (1 - u_i)(1 - u_j),

averaged over the batch (ordered pairs: each unordered pair counts twice, as in the code).

Deviations, all documented [ours]: an absent view has no evidence, no loss term, and is left out
of the aggregation (``mean`` divides by the number of present views, ``running`` skips it) and of
``L_con`` (pairs of present views only, divided by ``V_present - 1``; 0 with one view); the
evidential sum is divided by ``V_present + 1``. With every view present all of this is the
authors' code. ``logits`` are ``log(alpha_A / S_A)`` (softmax gives the aggregated opinion's
projected probability; the code's argmax over ``e_A`` is the same class).

**Weights** (``has_dynamic_weights``; ``weights="uniform"`` trains the uniform twin). The
aggregation is ``e_A = sum_v a_v e_v`` with fixed coefficients ``a_v`` (``1 / V`` or the
running ones); what decides how much a view moves the result is the amount of evidence it brings.
``FusionOutput.weights`` is each view's share of the aggregated evidence,
``w_v = a_v E_v / E_A`` with ``E_v = sum_k e_v,k`` and ``E_A = sum_v a_v E_v`` (0 for absent
views; rows sum to 1; where no view has evidence, ``a_v`` normalised). A swapped ``w'`` is mapped
back to evidence [ours]: every view keeps its evidence shape ``e_v / E_v`` (uniform where
``E_v = 0``) and the total ``E_A`` is kept, ``e'_A = E_A sum_v w'_v e_v / E_v``. ``learned`` is
the identity; ``uniform`` gives every present view the same share; ``oracle`` gives a corrupted
view none. The per-view loss terms and ``L_con`` always use the views' own opinions; the
aggregated term uses the swapped one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, trained_weights_option
from robustfusion.modules.evidential import (
    check_evidence_options,
    evidence_from_logits,
    evidential_loss,
    kl_annealing,
    view_heads,
)
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: How the views' evidence is aggregated (see the module docstring).
AGGREGATIONS = ("mean", "running")


def aggregation_coefficients(present: Tensor, aggregation: str = "mean") -> Tensor:
    """The coefficients ``a`` ``[B, V]`` of ``e_A = sum_v a_v e_v`` (0 for absent views).

    ``mean``: ``1 / V_present``. ``running``: the authors' ``e <- (e_v + e) / 2`` over the
    present views in column order; the first present view starts the sum at 1, every later one
    halves what is there and adds itself with 1/2. Rows with a present view sum to 1.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
    mask = present.to(torch.get_default_dtype())
    if aggregation == "mean":
        return mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    coefficients = torch.zeros_like(mask)
    started = torch.zeros_like(mask[:, 0], dtype=torch.bool)
    for v in range(mask.shape[1]):
        here = present[:, v].bool()
        halve = here & started
        coefficients = torch.where(halve.unsqueeze(1), coefficients * 0.5, coefficients)
        own = torch.where(halve, 0.5, 1.0) * here.to(mask.dtype)
        coefficients[:, v] = own
        started = started | here
    return coefficients


def aggregate_evidence(evidence: Tensor, coefficients: Tensor) -> Tensor:
    """``e_A = sum_v a_v e_v``: ``evidence`` ``[B, V, K]``, ``coefficients`` ``[B, V]``."""
    return (coefficients.unsqueeze(2).to(evidence.dtype) * evidence).sum(dim=1)


def evidence_shares(evidence: Tensor, coefficients: Tensor) -> Tensor:
    """Each view's share ``a_v E_v / sum_w a_w E_w`` of the aggregated evidence ``[B, V]``.

    Rows where no view brings any evidence get the normalised coefficients.
    """
    amounts = coefficients.to(evidence.dtype) * evidence.sum(dim=2)
    total = amounts.sum(dim=1, keepdim=True)
    fallback = coefficients / coefficients.sum(dim=1, keepdim=True).clamp_min(1e-12)
    tiny = torch.finfo(evidence.dtype).tiny
    return torch.where(total > 0, amounts / total.clamp_min(tiny), fallback.to(evidence.dtype))


def reweighted_evidence(evidence: Tensor, coefficients: Tensor, weights: Tensor) -> Tensor:
    """The aggregated evidence with view shares ``weights`` ``[B, V]`` (sum 1 over present
    views): ``E_A sum_v w_v e_v / E_v`` (uniform shape where ``E_v = 0``), ``E_A`` kept."""
    num_classes = evidence.shape[2]
    mass = evidence.sum(dim=2, keepdim=True)
    tiny = torch.finfo(evidence.dtype).tiny
    shape = torch.where(mass > 0, evidence / mass.clamp_min(tiny), 1.0 / num_classes)
    total = (coefficients.to(evidence.dtype) * mass.squeeze(2)).sum(dim=1, keepdim=True)
    return total * (weights.to(evidence.dtype).unsqueeze(2) * shape).sum(dim=1)


def conflict_degree(alphas: Tensor, present: Tensor) -> Tensor:
    """The conflictive degree per sample ``[B]`` (the authors' ``get_dc_loss`` before its mean).

    ``alphas`` ``[B, V, K]``; ``present`` ``BoolTensor[B, V]``. ``1 / (V_p - 1) sum_i sum_{j != i}
    cp(i, j) cc(i, j)`` over present views (0 with fewer than two), with
    ``cp = 1/2 sum_k |p_i - p_j|`` and ``cc = (1 - u_i)(1 - u_j)``.
    """
    num_classes = alphas.shape[2]
    strength = alphas.sum(dim=2, keepdim=True)
    probability = alphas / strength  # [B, V, K]
    certainty = 1.0 - num_classes / strength.squeeze(2)  # [B, V]
    mask = present.to(alphas.dtype)
    distance = 0.5 * (probability.unsqueeze(2) - probability.unsqueeze(1)).abs().sum(dim=3)
    pair = distance * certainty.unsqueeze(2) * certainty.unsqueeze(1)  # [B, V, V]; 0 on i == j
    pair = pair * mask.unsqueeze(2) * mask.unsqueeze(1)
    views = mask.sum(dim=1)
    return pair.sum(dim=(1, 2)) / (views - 1.0).clamp_min(1.0)


@METHODS.register(
    "ecml",
    "Evidential Conflictive Multi-view Learning (RCML): averaged Dirichlet evidence per view",
)
class ECML(Method):
    """Options: ``aggregation`` (``mean`` | ``running``: the authors' code), ``gamma`` (1.0),
    ``annealing_epochs`` (50), ``evidence`` (``softplus`` | ``relu`` | ``exp``), ``weights``
    (``learned`` | ``uniform``: the uniform twin)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "gamma": number(0.0, 1e3),
        "annealing_epochs": integer(1, 100_000),
    }

    has_dynamic_weights: ClassVar[bool] = True

    def __init__(
        self,
        spec: MethodSpec,
        aggregation: str = "mean",
        gamma: float = 1.0,
        annealing_epochs: int = 50,
        evidence: str = "softplus",
        weights: str = "learned",
    ) -> None:
        super().__init__(spec)
        self.trained_weights = trained_weights_option("ecml", weights)
        if aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"ecml: unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}"
            )
        check_evidence_options("ecml", evidence, annealing_epochs)
        if not gamma >= 0:
            raise ConfigError(f"ecml: gamma must be >= 0, got {gamma}")
        self.aggregation = aggregation
        self.gamma = float(gamma)
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
        mask = torch.stack([present[m] for m in self.modalities], dim=1).bool()
        views = []
        for i, m in enumerate(self.modalities):
            e = evidence_from_logits(self.heads[m](features[m]), self.evidence)
            views.append(torch.where(mask[:, i : i + 1].to(e.device), e, torch.zeros_like(e)))
        evidence = torch.stack(views, dim=1)  # [B, V, K]
        mask = mask.to(evidence.device)
        coefficients = aggregation_coefficients(mask, self.aggregation).to(evidence.dtype)
        learned = evidence_shares(evidence, coefficients)
        weights = learned
        if self.effective_weight_mode() == "learned":
            fused = aggregate_evidence(evidence, coefficients)
        else:
            weights = self.swap_weights(learned, present).to(evidence.dtype)
            fused = reweighted_evidence(evidence, coefficients, weights)
        alphas = evidence + 1.0
        alpha = fused + 1.0
        extras = {"alpha": alpha, "alphas": alphas, "present": mask}
        unimodal = {}
        for i, m in enumerate(self.modalities):
            extras[f"alpha/{m}"] = alphas[:, i]
            unimodal[m] = torch.log(alphas[:, i] / alphas[:, i].sum(dim=1, keepdim=True))
        return FusionOutput(
            logits=torch.log(alpha / alpha.sum(dim=1, keepdim=True)),
            weights=weights,
            modalities=self.modalities,
            unimodal_logits=unimodal,
            extras=extras,
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        weight = float(self.kl_weight)
        mask = output.extras["present"]
        alphas = output.extras["alphas"]
        total = evidential_loss(output.extras["alpha"], batch.target, weight)
        for i in range(alphas.shape[1]):
            per_view = evidential_loss(alphas[:, i], batch.target, weight)
            total = total + per_view * mask[:, i].to(per_view.dtype)
        evidential = total / (mask.sum(dim=1).to(total.dtype) + 1.0)
        terms = {"evidential": evidential.mean()}
        if self.gamma > 0:
            terms["conflict"] = self.gamma * conflict_degree(alphas, mask).mean()
        return terms

    def logged_values(self) -> dict[str, float]:
        return {"ecml/kl_weight": float(self.kl_weight)}
