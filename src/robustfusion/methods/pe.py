"""PE: probabilistic-embedding dynamic fusion (METHODS.md §3-4, the "dynamic < static" baseline).

Per modality a probabilistic head (:mod:`robustfusion.modules.probabilistic`, shared with UDML)
gives ``mu_m`` and ``logvar_m``; ``z_m = mu_m + eps sigma_m`` in training, ``mu_m`` in evaluation.
Uncertainty ``s_m = mean_d sigma_{m,d}^2`` and weight ``w_m = s_m^{-1} / sum_k s_k^{-1}`` over present
modalities (UDML's estimate without the dependency term and without the supervised noise
predictor). As in UDML's code the weights are applied residually: the fusion head receives
``1 + n w_m`` (``n`` present modalities, so ``n w`` sums to ``n`` like UDML's ``w``), which keeps
every modality in play; ``residual=False`` passes ``n w_m`` instead (pure reweighting). Loss: CE + ``kl_weight`` * sum_m KL(N(mu_m, sigma_m^2) || N(0, 1)) over present samples
(``kl_weight`` 1e-5, UDML's beta on CREMA-D). Gradients flow through the weights (the weights are
learned with the task, as in PE-style fusion).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, normalise_weights
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.probabilistic import ProbabilisticHead, gaussian_kl, reparameterise
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput


def inverse_variance_weights(
    logvars: Mapping[str, Tensor], present: Mapping[str, Tensor], modalities: tuple[str, ...]
) -> Tensor:
    """``w_m ∝ 1 / mean(sigma_m^2)`` ``[B, M]``, normalised over present modalities."""
    variance = torch.stack([logvars[m].exp().flatten(1).mean(dim=1) for m in modalities], dim=1)
    return normalise_weights(1.0 / variance.clamp_min(1e-12), present, modalities)


@METHODS.register(
    "pe", "probabilistic-embedding dynamic fusion: weights proportional to 1/mean sigma^2"
)
class ProbabilisticEmbeddingFusion(Method):
    """Options: ``kl_weight`` (1e-5), ``residual`` (True: fusion input ``(1 + n w_m) z_m``)."""

    def __init__(self, spec: MethodSpec, kl_weight: float = 1e-5, residual: bool = True) -> None:
        super().__init__(spec)
        if kl_weight < 0:
            raise ConfigError(f"pe: kl_weight must be >= 0, got {kl_weight}")
        self.kl_weight = float(kl_weight)
        self.residual = bool(residual)
        self.heads = nn.ModuleDict(
            {
                m: ProbabilisticHead(spec.feature_dims[m], spec.feature_dims[m], spatial=False)
                for m in self.modalities
            }
        )
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        extras: dict[str, Tensor] = {}
        samples: dict[str, Tensor] = {}
        logvars: dict[str, Tensor] = {}
        for m in self.modalities:
            mu, logvar = self.heads[m](features[m])
            samples[m] = reparameterise(mu, logvar, self.training)
            logvars[m] = logvar
            extras[f"mu/{m}"] = mu
            extras[f"logvar/{m}"] = logvar
        weights = inverse_variance_weights(logvars, present, self.modalities)
        count = torch.stack([present[m] for m in self.modalities], dim=1).sum(1, keepdim=True)
        scale = weights * count.to(weights.dtype)
        fused = self.fusion(samples, present, weights=1.0 + scale if self.residual else scale)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=weights,
            modalities=self.modalities,
            extras=extras,
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        terms = {"ce": F.cross_entropy(output.logits, batch.target)}
        if self.kl_weight > 0:
            kl = output.logits.new_zeros(())
            for m in self.modalities:
                seen = batch.present[m]
                if bool(seen.any()):
                    mu, logvar = output.extras[f"mu/{m}"], output.extras[f"logvar/{m}"]
                    kl = kl + gaussian_kl(mu[seen], logvar[seen]) * seen.float().mean()
            terms["kl"] = self.kl_weight * kl
        return terms
