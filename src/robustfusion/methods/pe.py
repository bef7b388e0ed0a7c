"""PE: probabilistic-embedding dynamic fusion (METHODS.md §3-4, the "dynamic < static" baseline).

Per modality a probabilistic head (:mod:`robustfusion.modules.probabilistic`, shared with UDML)
gives ``mu_m`` and ``logvar_m``; ``z_m = mu_m + eps sigma_m`` in training, ``mu_m`` in evaluation.
Uncertainty ``s_m = mean_d sigma_{m,d}^2`` and weight ``w_m = s_m^{-1} / sum_k s_k^{-1}`` over present
modalities (UDML's estimate without the dependency term and without the supervised noise
predictor). As in UDML's code the weights are applied residually: the fusion head receives
``1 + n w_m`` (``n`` present modalities, so ``n w`` sums to ``n`` like UDML's ``w``), which keeps
every modality in play; ``residual=False`` passes ``n w_m`` instead (pure reweighting). Loss: CE +
``kl_weight`` * sum_m KL(N(mu_m, sigma_m^2) || N(0, 1)) over present samples (``kl_weight`` 1e-5,
UDML's beta on CREMA-D). Gradients flow through the weights (the weights are learned with the
task, as in PE-style fusion).

Heads (``norm``): ``"batch"`` (default) puts BatchNorm1d after the linear maps of ``mu`` and
``logvar``, as UDML's released code does on feature maps (BatchNorm2d) and as METHODS.md asks of PE;
``"layer"`` uses LayerNorm. LayerNorm normalises each sample's ``logvar`` vector to zero mean and
unit variance before its affine map, so a sample cannot have a uniformly larger ``sigma`` than
another: ``s_m`` cannot carry a per-sample noise level. BatchNorm normalises over the batch and keeps
those differences. In training only the present samples of a modality enter its batch statistics
(and a batch with fewer than two uses the running statistics).

Weight swaps (``has_dynamic_weights``; ``weights="uniform"`` trains the uniform twin): the
normalised ``w`` goes through :meth:`~robustfusion.methods.base.Method.swap_weights` before it is
mapped to the fusion input ``1 + n w`` (or ``n w``). Natively, ``uniform`` gives every present
modality ``w = 1/n`` (fusion input ``2 z_m``: the same as equal variances), and ``oracle`` gives a
corrupted modality ``w = 0``, the lowest weight the method allows (fusion input ``1 z_m`` with the
residual form, ``0`` without), while the clean ones share ``w``'s mass. ``FusionOutput.weights``
reports the ``w`` actually used.

Segmentation (``task="segmentation"``, encoders give maps ``[B, C, h, w]``): each head is a 1x1
convolution + BatchNorm2d for ``mu`` and for ``logvar`` (``norm="layer"``: GroupNorm with one group,
LayerNorm over ``(C, h, w)``), UDML's released ``models/backbone.py`` layout; ``z_m = mu_m + eps
sigma_m`` per position. ``s_m`` is the mean of ``sigma^2`` over channels *and* positions, so the
weights stay per sample ``[B, M]`` (one weight per modality and image, broadcast over positions,
not a per-pixel weight [ours]). The weighted maps are fused position by position by the map fusion
head (``concat`` or ``sum``) and the task's head
(:class:`~robustfusion.modules.segmentation_head.SegmentationHead`) turns the fused map into
``[B, K, H, W]`` logits; the loss is the per-pixel cross-entropy without unlabelled pixels
(:meth:`Task.loss`). The KL is summed over every element of the map (channels and positions, as
UDML's code does on its maps) and averaged over the present samples as for vectors; at the default
``kl_weight`` 1e-5 it stays small. The sources (UDML's paper summary, METHODS.md §3-4) give PE only as
a baseline with no equation numbers and no segmentation recipe: everything here follows the vector
definition above, on maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from robustfusion.accepts import Accepts, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import (
    Method,
    MethodFacts,
    MethodSpec,
    normalise_weights,
    output_head,
    trained_weights_option,
)
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.probabilistic import ProbabilisticHead, gaussian_kl, reparameterise
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: Normalisation of the probabilistic heads: ``batch`` (BatchNorm1d) or ``layer`` (LayerNorm).
NORMS = ("batch", "layer")


def inverse_variance_weights(
    logvars: Mapping[str, Tensor], present: Mapping[str, Tensor], modalities: tuple[str, ...]
) -> Tensor:
    """``w_m ∝ 1 / mean(sigma_m^2)`` ``[B, M]``, normalised over present modalities."""
    variance = torch.stack([logvars[m].exp().flatten(1).mean(dim=1) for m in modalities], dim=1)
    return normalise_weights(1.0 / variance.clamp_min(1e-12), present, modalities)


@METHODS.register(
    "pe",
    "probabilistic-embedding dynamic fusion: weights proportional to 1/mean sigma^2",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class ProbabilisticEmbeddingFusion(Method):
    """Options: ``kl_weight`` (1e-5), ``residual`` (True: fusion input ``(1 + n w_m) z_m``),
    ``norm`` (``batch`` | ``layer``), ``weights`` (``learned`` | ``uniform``: the uniform twin)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {"kl_weight": number(0.0, 1e3)}

    has_dynamic_weights: ClassVar[bool] = True

    def __init__(
        self,
        spec: MethodSpec,
        kl_weight: float = 1e-5,
        residual: bool = True,
        norm: str = "batch",
        weights: str = "learned",
    ) -> None:
        super().__init__(spec)
        if kl_weight < 0:
            raise ConfigError(f"pe: kl_weight must be >= 0, got {kl_weight}")
        if norm not in NORMS:
            raise ConfigError(f"pe: unknown norm {norm!r}; choose batch or layer")
        self.trained_weights = trained_weights_option("pe", weights)
        self.kl_weight = float(kl_weight)
        self.residual = bool(residual)
        self.norm = norm
        maps = self.task.feature_kind == "map"
        self.heads = nn.ModuleDict(
            {
                m: ProbabilisticHead(
                    spec.feature_dims[m],
                    spec.feature_dims[m],
                    spatial=maps,
                    vector_norm=norm,
                    map_norm=norm,
                )
                for m in self.modalities
            }
        )
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim, maps=maps)
        self.classifier = output_head(spec, spec.hidden_dim)

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        extras: dict[str, Tensor] = {}
        samples: dict[str, Tensor] = {}
        logvars: dict[str, Tensor] = {}
        for m in self.modalities:
            mu, logvar = self._head(m, features[m], present[m])
            samples[m] = reparameterise(mu, logvar, self.training)
            logvars[m] = logvar
            extras[f"mu/{m}"] = mu
            extras[f"logvar/{m}"] = logvar
        learned = inverse_variance_weights(logvars, present, self.modalities)
        extras["learned_weights"] = learned.detach()
        weights = self.swap_weights(learned, present)
        count = torch.stack([present[m] for m in self.modalities], dim=1).sum(1, keepdim=True)
        scale = weights * count.to(weights.dtype)
        fused = self.fusion(samples, present, weights=1.0 + scale if self.residual else scale)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=weights,
            modalities=self.modalities,
            extras=extras,
        )

    def _head(self, m: str, feature: Tensor, seen: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of modality ``m``. In training with BatchNorm, only the present
        samples enter the batch statistics (absent ones get zeros, which nothing reads), and
        fewer than two samples use the running statistics."""
        head = self.heads[m]
        if not (self.training and self.norm == "batch"):
            return head(feature)
        if feature.shape[0] >= 2 and bool(seen.all()):
            return head(feature)
        index = seen.nonzero().squeeze(1)
        # [B, D] for vectors, [B, D, h, w] for maps
        zeros = feature.new_zeros(feature.shape[0], head.out_dim, *feature.shape[2:])
        if index.numel() == 0:
            return zeros, zeros
        if index.numel() < 2:
            head.eval()
            try:
                mu_seen, logvar_seen = head(feature[index])
            finally:
                head.train()
        else:
            mu_seen, logvar_seen = head(feature[index])
        if index.numel() == feature.shape[0]:
            return mu_seen, logvar_seen
        return zeros.index_copy(0, index, mu_seen), zeros.index_copy(0, index, logvar_seen)

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        terms = {"ce": self.task.loss(output.logits, batch.target)}
        if self.kl_weight > 0:
            kl = output.logits.new_zeros(())
            for m in self.modalities:
                seen = batch.present[m]
                if bool(seen.any()):
                    mu, logvar = output.extras[f"mu/{m}"], output.extras[f"logvar/{m}"]
                    kl = kl + gaussian_kl(mu[seen], logvar[seen]) * seen.float().mean()
            terms["kl"] = self.kl_weight * kl
        return terms
