"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

Generalised to ``M >= 2`` modalities (METHODS.md §4). Per batch, each modality's score is
``s_m = sum_i softmax(f_m(x_i))[y_i]`` over the samples where it is present (paper Eq. 9), where
``f_m`` is the modality's *contribution* to the fused prediction. The paper slices the concat
layer's weights for it (and halves the bias); we instead run the shared fusion head and classifier
with every other modality marked absent, which works for every fusion head (concat, sum,
attention, gated) [ours]. Discrepancy ratio ``rho_m = s_m / mean_{k != m} s_k`` (for M = 2 the
paper's ``s_a / s_b``) and coefficient (Eq. 10)::

    k_m = 1 - tanh(alpha * (rho_m - ratio_offset))   if rho_m > 1,   else 1

with ``ratio_offset = 0`` by default: ``1 - tanh(alpha rho)``, Eq. 10 and the official code
(``main.py``: ``1 - tanh(alpha * relu(ratio))``), which jumps from 1 to ``1 - tanh(alpha)`` at
``rho = 1``; ``ratio_offset=1`` [ours] makes ``k`` continuous there. (At exactly ``rho = 1`` the
code modulates the other modality; we modulate neither.)

After backward, inside the modulation window, every modulated gradient of modality ``m``'s encoder
becomes ``k_m g + N(0, std(g)^2)`` (GE, Eq. 12; ``std`` of the unmodulated gradient plus 1e-8 as in
the code; the noise goes on every modulated encoder, the non-dominant one included, as in the
code; ``ge=False`` gives plain OGM). Which gradients (``modulate``):

* ``"weights"`` (default): the weight tensors of the encoder's convolution and linear layers
  (every parameter with at least 2 dimensions), not biases or normalisation parameters. This is
  our analogue of the code, which modulates the 4-D convolution weights of its ResNet-18
  encoders only: our encoders are also MLPs (2-D linear weights), which a 4-D rule would skip.
* ``"conv"``: 4-D parameters only, literally the code's rule (an MLP encoder is then not modulated).
* ``"all"``: every parameter of the encoder.

Window: epochs ``e`` with ``modulation_starts * E <= e <= modulation_ends * E`` for ``E`` training
epochs, both ends included as in the code (``modulation_starts <= epoch <= modulation_ends``,
defaults 0 and 50 of 100 epochs: fractions 0 and 0.5).

The official recipe is SGD (lr 1e-3, momentum 0.9, weight decay 1e-4; ``recipe="released"`` makes
them the training defaults). Under Adam a gradient scale that changes slowly is largely divided out
again by Adam's normalisation, so the modulation ``k`` does little there and mostly the GE noise
remains; use SGD to see OGM's effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def modulation_coefficients(ratios: Tensor, alpha: float, offset: float = 0.0) -> Tensor:
    """``k = 1 - tanh(alpha (rho - offset))`` where ``rho > 1``, else 1 (OGM Eq. 10; the paper
    and the code use ``offset = 0``)."""
    modulated = 1.0 - torch.tanh(alpha * (ratios - offset))
    return torch.where(ratios > 1.0, modulated, torch.ones_like(ratios))


#: Which encoder gradients are modulated (module docstring).
MODULATE = ("weights", "conv", "all")
#: Training settings of the official code (``main.py``: SGD, lr 1e-3, momentum 0.9, wd 1e-4).
RECIPES: dict[str, dict[str, Any]] = {
    "none": {},
    "released": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4},
}


@METHODS.register(
    "ogm_ge", "on-the-fly gradient modulation + Gaussian gradient noise (OGM-GE), M >= 2"
)
class OGMGE(Method):
    """Options: ``alpha`` (0.1; the authors recommend 0.1 for VGGSound, 0.8 for CREMA-D),
    ``modulation_starts`` (0.0), ``modulation_ends`` (0.5; fractions of the epochs, both
    included), ``ge`` (True), ``ratio_offset`` (0: Eq. 10 and the code; 1: continuous at
    ``rho = 1``), ``modulate`` (``weights`` | ``conv`` | ``all``), ``recipe`` (``none`` |
    ``released``: the official SGD settings as training defaults)."""

    def __init__(
        self,
        spec: MethodSpec,
        alpha: float = 0.1,
        modulation_starts: float = 0.0,
        modulation_ends: float = 0.5,
        ge: bool = True,
        ratio_offset: float = 0.0,
        modulate: str = "weights",
        recipe: str = "none",
    ) -> None:
        super().__init__(spec)
        if alpha < 0:
            raise ConfigError(f"ogm_ge: alpha must be >= 0, got {alpha}")
        if not 0.0 <= modulation_starts <= modulation_ends <= 1.0:
            raise ConfigError(
                "ogm_ge: need 0 <= modulation_starts <= modulation_ends <= 1 (fractions of training)"
            )
        if modulate not in MODULATE:
            raise ConfigError(
                f"ogm_ge: unknown modulate {modulate!r}; choose one of {', '.join(MODULATE)}"
            )
        if recipe not in RECIPES:
            raise ConfigError(
                f"ogm_ge: unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}"
            )
        self.alpha = float(alpha)
        self.modulation_starts = float(modulation_starts)
        self.modulation_ends = float(modulation_ends)
        self.ge = bool(ge)
        self.ratio_offset = float(ratio_offset)
        self.modulate = modulate
        self.recipe = recipe
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)
        count = len(self.modalities)
        self.register_buffer("scores", torch.zeros(count))
        self.register_buffer("coefficients", torch.ones(count))
        self.register_buffer("active", torch.tensor(True))

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``recipe="released"``: SGD, lr 1e-3, momentum 0.9, weight decay 1e-4 (official code)."""
        return dict(RECIPES.get(str(options.get("recipe", "none")), {}))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """Modulate in epochs ``starts * E <= epoch <= ends * E`` (both ends included, as the code)."""
        start = self.modulation_starts * max_epochs
        end = self.modulation_ends * max_epochs
        self.active.fill_(bool(start <= epoch <= end))

    def modulated_parameters(self, encoder: nn.Module) -> list[nn.Parameter]:
        """The parameters of ``encoder`` whose gradients OGM-GE modulates (see ``modulate``)."""
        params = list(encoder.parameters())
        if self.modulate == "all":
            return params
        if self.modulate == "conv":
            return [p for p in params if p.dim() == 4]
        return [p for p in params if p.dim() >= 2]

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
        """``g <- k_m g + N(0, std(g)^2)`` on modality ``m``'s modulated encoder gradients
        (inside the window)."""
        if not bool(self.active) or len(self.modalities) < 2:
            return
        for i, m in enumerate(self.modalities):
            if m not in encoders:
                continue
            coefficient = float(self.coefficients[i])
            for parameter in self.modulated_parameters(encoders[m]):
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
