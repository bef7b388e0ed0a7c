"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

Generalised to ``M >= 2`` modalities (METHODS.md §4). Per batch, each modality's score is
``s_m = sum_i softmax(f_m(x_i))[y_i]`` over the samples where it is present (paper Eq. 9), where
``f_m`` is the modality's *contribution* to the fused prediction. The paper slices the concat
layer's weights for it; we instead run the shared fusion head and classifier with every other
modality marked absent, which works for every fusion head (concat, sum, attention, gated).
Discrepancy ratio ``rho_m = s_m / mean_{k != m} s_k`` (for M = 2 the paper's ``s_a / s_b``) and
coefficient ``k_m = 1 - tanh(alpha (rho_m - offset))`` when ``rho_m > 1``, else 1 (Eq. 10). With the
default ``offset = 1`` (METHODS.md) ``k`` is continuous at ``rho = 1``; the released code uses
``1 - tanh(alpha rho)`` (``ratio_offset=0``). After backward, every gradient of modality ``m``'s
encoder becomes ``k_m g + N(0, std(g)^2)`` (std of the unmodulated gradient) (GE, Eq. 12; noise on every modulated encoder as in the
code; ``ge=False`` gives plain OGM), for epochs in ``[modulation_starts, modulation_ends)`` as
fractions of training (code defaults 0 and 50 of 100 epochs: 0 and 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, uniform_weights
from robustfusion.modules.fusion import build_fusion
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput


def discrepancy_ratios(scores: Tensor) -> Tensor:
    """``rho_m = s_m / mean_{k != m} s_k`` for ``scores`` ``[M]`` (M >= 2)."""
    count = scores.shape[0]
    others = (scores.sum() - scores) / (count - 1)
    return scores / others.clamp_min(1e-12)


def modulation_coefficients(ratios: Tensor, alpha: float, offset: float = 1.0) -> Tensor:
    """``k = 1 - tanh(alpha (rho - offset))`` where ``rho > 1``, else 1 (OGM Eq. 10)."""
    modulated = 1.0 - torch.tanh(alpha * (ratios - offset))
    return torch.where(ratios > 1.0, modulated, torch.ones_like(ratios))


@METHODS.register(
    "ogm_ge", "on-the-fly gradient modulation + Gaussian gradient noise (OGM-GE), M >= 2"
)
class OGMGE(Method):
    """Options: ``alpha`` (0.1), ``modulation_starts`` (0.0), ``modulation_ends`` (0.5),
    ``ge`` (True), ``ratio_offset`` (1.0; 0 for the released code's ``1 - tanh(alpha rho)``)."""

    def __init__(
        self,
        spec: MethodSpec,
        alpha: float = 0.1,
        modulation_starts: float = 0.0,
        modulation_ends: float = 0.5,
        ge: bool = True,
        ratio_offset: float = 1.0,
    ) -> None:
        super().__init__(spec)
        if alpha < 0:
            raise ConfigError(f"ogm_ge: alpha must be >= 0, got {alpha}")
        if not 0.0 <= modulation_starts <= modulation_ends <= 1.0:
            raise ConfigError(
                "ogm_ge: need 0 <= modulation_starts <= modulation_ends <= 1 (fractions of training)"
            )
        self.alpha = float(alpha)
        self.modulation_starts = float(modulation_starts)
        self.modulation_ends = float(modulation_ends)
        self.ge = bool(ge)
        self.ratio_offset = float(ratio_offset)
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)
        count = len(self.modalities)
        self.register_buffer("scores", torch.zeros(count))
        self.register_buffer("coefficients", torch.ones(count))
        self.register_buffer("active", torch.tensor(True))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        start = self.modulation_starts * max_epochs
        end = self.modulation_ends * max_epochs
        self.active.fill_(bool(start <= epoch < end))

    def contributions(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each modality's logits through the shared head with every other modality absent."""
        out: dict[str, Tensor] = {}
        for m in self.modalities:
            alone = {
                k: (torch.ones_like(v) if k == m else torch.zeros_like(v))
                for k, v in present.items()
            }
            logits = self.classifier(self.fusion(features, alone))
            out[m] = torch.where(present[m].unsqueeze(1), logits, torch.zeros_like(logits))
        return out

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        logits = self.classifier(self.fusion(features, present))
        with torch.no_grad():
            unimodal = self.contributions(features, present)
        return FusionOutput(
            logits=logits,
            weights=uniform_weights(present, self.modalities),
            modalities=self.modalities,
            unimodal_logits=unimodal,
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        if self.training and len(self.modalities) >= 2:
            self._update_scores(output, batch)
        return {"ce": F.cross_entropy(output.logits, batch.target)}

    @torch.no_grad()
    def _update_scores(self, output: FusionOutput, batch: Batch) -> None:
        """Store ``s_m`` and ``k_m`` of this batch for :meth:`after_backward`."""
        for i, m in enumerate(self.modalities):
            probs = torch.softmax(output.unimodal_logits[m].float(), dim=1)
            picked = probs.gather(1, batch.target.unsqueeze(1)).squeeze(1)
            self.scores[i] = (picked * batch.present[m].to(picked.dtype)).sum()
        ratios = discrepancy_ratios(self.scores)
        self.coefficients.copy_(modulation_coefficients(ratios, self.alpha, self.ratio_offset))

    @torch.no_grad()
    def after_backward(self, encoders: nn.ModuleDict) -> None:
        """``g <- k_m g + N(0, std(g)^2)`` on modality ``m``'s encoder (inside the window)."""
        if not bool(self.active) or len(self.modalities) < 2:
            return
        for i, m in enumerate(self.modalities):
            if m not in encoders:
                continue
            coefficient = float(self.coefficients[i])
            for parameter in encoders[m].parameters():
                grad = parameter.grad
                if grad is None:
                    continue
                std = grad.std() if self.ge and grad.numel() > 1 else None
                grad.mul_(coefficient)
                if std is not None:
                    grad.add_(torch.randn_like(grad) * (std + 1e-8))

    def logged_values(self) -> dict[str, float]:
        values = {
            f"ogm_ge/k_{m}": float(self.coefficients[i]) for i, m in enumerate(self.modalities)
        }
        values.update(
            {f"ogm_ge/s_{m}": float(self.scores[i]) for i, m in enumerate(self.modalities)}
        )
        return values
