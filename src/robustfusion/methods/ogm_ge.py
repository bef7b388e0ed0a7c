"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

Authors' code: GeWu-Lab/OGM-GE_CVPR2022 (``main.py`` ``train_epoch``, ``models/fusion_modules.py``
``ConcatFusion``). Generalised to ``M >= 2`` modalities (METHODS.md §4).

Classifier (``head``). ``"linear"`` (default, [code]): one linear layer over the concatenated
features, ``logits = W [z_1; ...; z_M] + b`` (absent modalities enter as zeros;
:class:`~robustfusion.modules.linear_head.ConcatLinearHead`), and modality ``m``'s output is its
slice of ``W`` plus its share of the bias, ``f_m = W_m z_m + b / M`` (the code's
``out_a = a W_a^T + b / 2``; the ``M`` outputs sum to the fused logits). It exists for
``--fusion concat`` and ``sum`` (a sum of per-modality linear maps is the same layer); with
``attention`` or ``gated`` the default is ``"fusion"`` [ours]: the project's fusion head and a
linear classifier, ``f_m`` being their output with every other modality marked absent.

Score, ratio and coefficient. ``s_m = sum_i softmax(f_m(x_i))[y_i]`` over the samples where ``m``
is present (Eq. 9); ``rho_m = s_m / mean_{k != m} s_k`` (for M = 2 the paper's ``s_a / s_b``)
and (Eq. 10)::

    k_m = 1 - tanh(alpha * (rho_m - ratio_offset))   if rho_m > 1,   else 1

with ``ratio_offset = 0`` by default: ``1 - tanh(alpha rho)`` as METHODS.md, Eq. 10 and the code
(``1 - tanh(alpha * relu(ratio))``), which jumps from 1 to ``1 - tanh(alpha)`` at ``rho = 1``;
``ratio_offset=1`` [ours] makes ``k`` continuous there. (At exactly ``rho = 1`` the code
modulates the other modality; we modulate neither.)

After backward, inside the modulation window, every modulated gradient of modality ``m``'s encoder
becomes ``k_m g + N(0, std(g)^2)`` (GE, Eq. 12; ``std`` of the unmodulated gradient plus 1e-8 as
in the code; the noise goes on every modulated encoder, the non-dominant one included, as in the
code; ``ge=False`` gives plain OGM). Which gradients (``modulate``):

* ``"auto"`` (default): the code's rule, 4-D (convolution) weights only, on an encoder that has
  any; on an encoder without (an MLP) the code's rule would modulate nothing and OGM-GE would be
  plain training, so there it takes every weight tensor with at least 2 dimensions [ours].
* ``"conv"``: 4-D parameters only, literally the code's rule (an MLP encoder is not modulated).
* ``"weights"``: every parameter with at least 2 dimensions (convolution and linear weights, not
  biases or normalisation parameters).
* ``"all"``: every parameter of the encoder.

Window: epochs ``e`` with ``modulation_starts * E <= e <= modulation_ends * E`` for ``E`` training
epochs, both ends included as in the code (``modulation_starts <= epoch <= modulation_ends``,
defaults 0 and 50 of 100 epochs: fractions 0 and 0.5).

Recipe (``recipe="released"``, the default): the code's SGD, lr 1e-3, momentum 0.9, weight decay
1e-4 (:meth:`OGMGE.training_defaults`: they apply to every setting the user did not give) and its
``StepLR(70, 0.1)`` of 100 epochs, the learning rate x 0.1 from 70 % of the run
(``lr_step_at``, ``lr_step``). Under Adam a gradient scale that changes slowly is largely divided
out again by Adam's normalisation, so ``k`` does little there and mostly the GE noise remains.

Presets: ``released`` (default; the above) and ``generalised``, this project's earlier default
(the fusion head with the other modalities absent, ``modulate="weights"``, no recipe: the
trainer's Adam, no learning-rate step). Options given explicitly override the preset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, uniform_weights
from robustfusion.modules.distributed import all_reduce_mean
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.linear_head import ConcatLinearHead
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
MODULATE = ("auto", "conv", "weights", "all")
#: The classifier: the code's linear layer sliced per modality, or the project's fusion heads.
HEADS = ("linear", "fusion")
#: Fusion heads for which the code's single linear layer exists.
LINEAR_FUSIONS = ("concat", "sum")
#: Training settings of the official code (``main.py``: SGD, lr 1e-3, momentum 0.9, wd 1e-4).
RECIPES: dict[str, dict[str, Any]] = {
    "none": {},
    "released": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4},
}
#: Where ``StepLR(70, 0.1)`` of the code's 100 epochs steps, per recipe (``None``: no step).
RECIPE_LR_STEP_AT: dict[str, float | None] = {"none": None, "released": 0.7}
#: Option values each preset implies; an option given explicitly wins. ``released``: the authors'
#: code; ``generalised``: this project's earlier default (module docstring).
PRESETS: dict[str, dict[str, str]] = {
    "released": {"head": "linear", "modulate": "auto", "recipe": "released"},
    "generalised": {"head": "fusion", "modulate": "weights", "recipe": "none"},
}


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"ogm_ge: unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return str(value)


@METHODS.register(
    "ogm_ge",
    "on-the-fly gradient modulation + Gaussian gradient noise (OGM-GE), M >= 2; "
    "options preset=released|generalised, alpha",
)
class OGMGE(Method):
    """Options: ``preset`` (``released``: the authors' code, default; ``generalised``: our
    earlier default), ``alpha`` (0.1; the authors recommend 0.1 for VGGSound, 0.8 for CREMA-D),
    ``modulation_starts`` (0.0), ``modulation_ends`` (0.5; fractions of the epochs, both
    included), ``ge`` (True), ``ratio_offset`` (0: Eq. 10 and the code; 1: continuous at
    ``rho = 1``), ``head`` (``linear`` | ``fusion``), ``modulate`` (``auto`` | ``conv`` |
    ``weights`` | ``all``), ``recipe`` (``released``: the official SGD settings as training
    defaults and the learning-rate step | ``none``), ``lr_step_at`` (fraction of the run; default
    the recipe's: 0.7 or none), ``lr_step`` (0.1)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "alpha": number(0.0, 100.0),
        "modulation_starts": number(0.0, 1.0),
        "modulation_ends": number(0.0, 1.0),
        "ratio_offset": number(-10.0, 10.0),
        "lr_step_at": number(0.0, 1.0),
        "lr_step": number(0.0, 1e3, open_minimum=True),
    }

    def __init__(
        self,
        spec: MethodSpec,
        preset: str = "released",
        alpha: float = 0.1,
        modulation_starts: float = 0.0,
        modulation_ends: float = 0.5,
        ge: bool = True,
        ratio_offset: float = 0.0,
        head: str | None = None,
        modulate: str | None = None,
        recipe: str | None = None,
        lr_step_at: float | None = None,
        lr_step: float = 0.1,
    ) -> None:
        super().__init__(spec)
        preset = _choice("preset", preset, tuple(PRESETS))
        if alpha < 0:
            raise ConfigError(f"ogm_ge: alpha must be >= 0, got {alpha}")
        if not 0.0 <= modulation_starts <= modulation_ends <= 1.0:
            raise ConfigError(
                "ogm_ge: need 0 <= modulation_starts <= modulation_ends <= 1 (fractions of the run)"
            )
        defaults = PRESETS[preset]
        if head is None:
            head = defaults["head"] if spec.fusion in LINEAR_FUSIONS else "fusion"
        head = _choice("head", head, HEADS)
        if head == "linear" and spec.fusion not in LINEAR_FUSIONS:
            raise ConfigError(
                f"ogm_ge: head=linear is the authors' linear layer over concatenated features and "
                f"exists for --fusion concat or sum, not {spec.fusion!r}; use head=fusion"
            )
        self.preset = preset
        self.head = head
        self.modulate = _choice(
            "modulate", defaults["modulate"] if modulate is None else modulate, MODULATE
        )
        self.recipe = _choice(
            "recipe", defaults["recipe"] if recipe is None else recipe, tuple(RECIPES)
        )
        if lr_step_at is None:
            lr_step_at = RECIPE_LR_STEP_AT[self.recipe]
        if (lr_step_at is not None and not 0.0 <= lr_step_at <= 1.0) or lr_step <= 0:
            raise ConfigError(
                f"ogm_ge: lr_step_at must be a fraction in [0, 1] and lr_step > 0, got "
                f"{lr_step_at} and {lr_step}"
            )
        self.lr_step_at = None if lr_step_at is None else float(lr_step_at)
        self.lr_step = float(lr_step)
        self.alpha = float(alpha)
        self.modulation_starts = float(modulation_starts)
        self.modulation_ends = float(modulation_ends)
        self.ge = bool(ge)
        self.ratio_offset = float(ratio_offset)
        if head == "linear":
            self.linear_head: ConcatLinearHead | None = ConcatLinearHead(
                spec.feature_dims, spec.num_classes
            )
        else:
            self.linear_head = None
            self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
            self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)
        count = len(self.modalities)
        self.register_buffer("scores", torch.zeros(count))
        self.register_buffer("coefficients", torch.ones(count))
        self.register_buffer("active", torch.tensor(True))

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The recipe's settings: ``released`` (the default preset's): SGD, lr 1e-3, momentum 0.9,
        weight decay 1e-4 (official code); ``none`` (``preset=generalised``): none."""
        preset = PRESETS.get(str(options.get("preset", "released")), PRESETS["released"])
        return dict(RECIPES.get(str(options.get("recipe", preset["recipe"])), {}))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """Modulate in epochs ``starts * E <= epoch <= ends * E`` (both ends included, as in the
        code)."""
        start = self.modulation_starts * max_epochs
        end = self.modulation_ends * max_epochs
        self.active.fill_(bool(start <= epoch <= end))

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        """``lr_step`` from epoch ``ceil(lr_step_at * E)`` on (the code's ``StepLR(70, 0.1)`` of
        100 epochs), else 1."""
        if self.lr_step_at is None or max_epochs <= 0:
            return 1.0
        return self.lr_step if epoch >= math.ceil(self.lr_step_at * max_epochs - 1e-9) else 1.0

    def modulated_parameters(self, encoder: nn.Module) -> list[nn.Parameter]:
        """The parameters of ``encoder`` whose gradients OGM-GE modulates (see ``modulate``)."""
        params = list(encoder.parameters())
        if self.modulate == "all":
            return params
        conv = [p for p in params if p.dim() == 4]
        if self.modulate == "conv" or (self.modulate == "auto" and conv):
            return conv
        return [p for p in params if p.dim() >= 2]

    def contributions(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each modality's logits ``f_m`` (module docstring), zero where it is absent."""
        if self.linear_head is not None:
            parts = self.linear_head.contributions(features, present)
            share = self.linear_head.linear.bias / len(self.modalities)
            rows = {m: parts[j] + share for j, m in enumerate(self.modalities)}
        else:
            rows = {}
            for m in self.modalities:
                alone = {
                    k: (torch.ones_like(v) if k == m else torch.zeros_like(v))
                    for k, v in present.items()
                }
                rows[m] = self.classifier(self.fusion(features, alone))
        return {
            m: torch.where(present[m].unsqueeze(1), logits, torch.zeros_like(logits))
            for m, logits in rows.items()
        }

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        if self.linear_head is not None:
            logits = self.linear_head(features, present)
        else:
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
        """Store ``s_m`` and ``k_m`` of this batch for :meth:`after_backward`. Under DDP the
        scores are averaged over the processes first: ``k`` then comes from the whole batch, as
        under the code's ``DataParallel``, and is the same in every process (it scales gradients
        that are already synchronised, so a per-process ``k`` would let the replicas drift)."""
        for i, m in enumerate(self.modalities):
            probs = torch.softmax(output.unimodal_logits[m].float(), dim=1)
            picked = probs.gather(1, batch.target.unsqueeze(1)).squeeze(1)
            self.scores[i] = (picked * batch.present[m].to(picked.dtype)).sum()
        all_reduce_mean(self.scores)
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
