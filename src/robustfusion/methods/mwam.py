"""MWAM: Multimodal Weight Allocation Module ("Plug, Play, and Fortify", arXiv 2602.22644).

A wrapper around any method (``mwam`` alone wraps ``static``; ``mwam+X`` wraps method ``X``). During
training only, each step:

1. FRM of every modality's input (default, as the released code) or feature (``source="feature"``),
   Eq. 4, no gradient (``modules/frequency.py``); by default averaged rather than summed over
   samples and patches [ours: T is unchanged for equal-size modalities, see docs/mwam.md];
2. smoothing bank ``F^_j = omega F^_{j-1} + (1 - omega) F_j`` (Eq. 2; starts at 0 so the first
   value is ``(1 - omega) F`` as in the code), a registered buffer; under DDP the current FRM is
   all-reduced first, so every process holds the same bank and K;
3. ratio ``T_i = FRM_i / (mean_c F^_c + eps)`` (Eq. 6) and weight
   ``K_i = alpha - beta / (1 + exp(-lambda (T_i - gamma)))`` (Eq. 5);
4. ``mode="loss"``: ``+ sum_i K_i CE(y, y^_i)`` from auxiliary unimodal heads; ``"gradient"``:
   after ``backward()`` every gradient of ``encoders[i]`` is multiplied by ``K_i`` (Alg. 1);
   ``"hybrid"`` (default, best in the paper's ablation): both.

Nothing is added at inference: in eval mode ``forward`` is exactly the inner method's forward.
With Adam-type optimisers a constant gradient scale cancels out, so use ``loss`` or ``hybrid``.
Encoders shared by several modalities (one ViT for all tokens) are not scaled parameter-wise;
apply :func:`robustfusion.modules.grad_scale.scale_token_groups` with :meth:`MWAM.grad_scales`
to their token groups instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec
from robustfusion.modules.distributed import all_reduce_mean
from robustfusion.modules.frequency import FRM_EPS, frm_modalities
from robustfusion.modules.heads import UnimodalHeads
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: Hyperparameters of Eq. 5: the paper's defaults, the released code's, and the authors' values
#: for batch sizes <= 4.
PRESETS: dict[str, dict[str, float]] = {
    "paper": {"alpha": 1.5, "beta": 1.0, "lam": 6.0, "gamma": 0.7},
    "code": {"alpha": 1.5, "beta": 1.0, "lam": 10.0, "gamma": 1.0},
    "small_batch": {"alpha": 1.5, "beta": 1.0, "lam": 4.0, "gamma": 1.0},
}
MODES = ("gradient", "loss", "hybrid")
SOURCES = ("input", "feature")
_FEATURE_KEY = "mwam.feature."
_AUX_KEY = "mwam.aux_logits."


def modulation_weight(
    ratio: Tensor, alpha: float = 1.5, beta: float = 1.0, lam: float = 6.0, gamma: float = 0.7
) -> Tensor:
    """Eq. 5: ``K = alpha - beta / (1 + exp(-lam (T - gamma)))``."""
    return alpha - beta * torch.sigmoid(lam * (ratio - gamma))


@METHODS.register(
    "mwam",
    "FRM-guided modality re-weighting during training only (wraps static, or X as mwam+X); "
    "options mode=hybrid|loss|gradient, preset=paper|code|small_batch",
)
class MWAM(Method):
    """Frequency-ratio-guided modality balancing around an inner method.

    Args:
        spec: the method spec (``input_shapes`` decide the FRM variant: 1-D for vectors).
        inner: the wrapped method; ``None`` builds :class:`StaticFusion` from ``spec``.
        mode: ``hybrid`` (default), ``loss`` or ``gradient``.
        preset: ``paper`` (alpha=1.5, beta=1, lam=6, gamma=0.7), ``code`` (gamma=1, lam=10) or
            ``small_batch`` (gamma=1, lam=4); ``alpha``/``beta``/``lam``/``gamma`` override it.
        omega: smoothing factor of the bank (Eq. 2).
        patch, q: DCT block size and band size.
        source: ``input`` (released code) or ``feature`` (the abstract's wording).
        channel_norm: divide FRM by the channel count [ours] (``reduction="sum"`` only).
        reduction: ``mean`` (default [ours]) averages the ratio over observed samples, channels,
            patches and coefficients, which leaves T unchanged for equal-size modalities and
            keeps modalities of different sizes comparable; ``sum`` is Eq. 4 literally (a
            modality with more patches then gets a larger FRM for its size alone).
        eps: the epsilon of Eqs. 4 and 6.
    """

    composable: ClassVar[bool] = True
    #: The trainer logs FRM, T and K every step: ``robustfusion frm`` analyses that series.
    log_every_n_steps: ClassVar[int] = 1

    def __init__(
        self,
        spec: MethodSpec,
        inner: Method | None = None,
        mode: str = "hybrid",
        preset: str = "paper",
        alpha: float | None = None,
        beta: float | None = None,
        lam: float | None = None,
        gamma: float | None = None,
        omega: float = 0.5,
        patch: int = 8,
        q: int = 2,
        source: str = "input",
        channel_norm: bool = True,
        reduction: str = "mean",
        eps: float = FRM_EPS,
    ) -> None:
        super().__init__(spec)
        if mode not in MODES:
            raise ConfigError(f"mwam: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if preset not in PRESETS:
            raise ConfigError(
                f"mwam: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        if source not in SOURCES:
            raise ConfigError(
                f"mwam: unknown source {source!r}; choose one of {', '.join(SOURCES)}"
            )
        omega = _number("omega", omega)
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"mwam: unknown reduction {reduction!r}; choose mean or sum")
        if not 0.0 <= omega < 1.0:
            raise ConfigError(f"mwam: omega must be in [0, 1), got {omega}")
        eps = _number("eps", eps)
        if not (isinstance(patch, int) and isinstance(q, int)):
            raise ConfigError(f"mwam: patch and q must be integers, got patch={patch!r}, q={q!r}")
        if patch < 1 or q < 1 or 2 * q > patch:
            raise ConfigError(
                f"mwam: need patch >= 2 q >= 2 so that the bands do not overlap, got patch={patch}, q={q}"
            )
        if inner is None:
            from robustfusion.methods.static import StaticFusion

            inner = StaticFusion(spec)
        self.inner = inner
        # The encoders must produce what the inner method wants.
        self.wants_spatial_features = inner.wants_spatial_features  # type: ignore[misc]
        self.mode = mode
        self.preset = preset
        values = dict(PRESETS[preset])
        for name, value in (("alpha", alpha), ("beta", beta), ("lam", lam), ("gamma", gamma)):
            if value is not None:
                values[name] = _number(name, value)
        self.alpha, self.beta = values["alpha"], values["beta"]
        self.lam, self.gamma = values["lam"], values["gamma"]
        self.omega, self.patch, self.q = float(omega), int(patch), int(q)
        self.source, self.channel_norm, self.eps = source, bool(channel_norm), float(eps)
        self.reduction = reduction
        self.aux_heads = (
            UnimodalHeads(spec.feature_dims, spec.num_classes) if mode != "gradient" else None
        )
        m = len(self.modalities)
        self.register_buffer("frm_bank", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("frm_last", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("ratio", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("k", torch.ones(m))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- forward (inner's graph)
    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        output = self.inner(features, present)
        if not self.training:
            return output
        extras = dict(output.extras)
        if self.aux_heads is not None:
            pooled = {m: _pool(features[m]) for m in self.modalities}
            for m, logits in self.aux_heads(pooled).items():
                extras[_AUX_KEY + m] = logits
        if self.source == "feature":
            for m in self.modalities:
                extras[_FEATURE_KEY + m] = features[m].detach()
        output.extras = extras
        return output

    # ----------------------------------------------------------------- FRM, bank, T and K
    @torch.no_grad()
    def update_weights(self, batch: Batch, output: FusionOutput | None = None) -> Tensor:
        """Eqs. 4, 2, 6, 5 on one training batch; updates the buffers and returns ``K`` ``[M]``."""
        if self.source == "feature":
            keys = [_FEATURE_KEY + m for m in self.modalities]
            if output is None or any(key not in output.extras for key in keys):
                raise ConfigError(
                    "mwam: source='feature' needs the training output of MWAM.forward"
                )
            sources = {m: output.extras[key] for m, key in zip(self.modalities, keys, strict=True)}
        else:
            sources = {m: batch.inputs[m] for m in self.modalities}
        values = frm_modalities(
            sources,
            batch.present,
            self.patch,
            self.q,
            self.eps,
            self.channel_norm,
            self.reduction,
        )
        current = all_reduce_mean(values.to(self.frm_bank.device))
        self.frm_last.copy_(current)
        self.frm_bank.mul_(self.omega).add_((1.0 - self.omega) * current)
        self.ratio.copy_(current / (self.frm_bank.mean() + self.eps))
        k = modulation_weight(self.ratio, self.alpha, self.beta, self.lam, self.gamma)
        self.k.copy_(k.to(self.k.dtype))
        self.steps.add_(1)
        return self.k

    def grad_scales(self) -> dict[str, Tensor]:
        """The current ``K`` per modality, for :func:`~robustfusion.modules.grad_scale.scale_token_groups`."""
        return {m: self.k[i] for i, m in enumerate(self.modalities)}

    # ----------------------------------------------------------------- training hooks
    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        terms = dict(self.inner.losses(output, batch))
        if not self.training:
            return terms
        k = self.update_weights(batch, output)
        if self.aux_heads is not None:
            missing = [m for m in self.modalities if _AUX_KEY + m not in output.extras]
            if missing:
                raise ConfigError("mwam: the loss mode needs the training output of MWAM.forward")
            # All unimodal cross-entropies in one call: [M, B] per-sample losses.
            logits = torch.stack([output.extras[_AUX_KEY + m] for m in self.modalities])
            count = logits.shape[0]
            per_sample = F.cross_entropy(
                logits.flatten(0, 1), batch.target.repeat(count), reduction="none"
            ).view(count, -1)
            mask = torch.stack(
                [
                    batch.present[m] if m in batch.present else torch.ones_like(batch.target)
                    for m in self.modalities
                ]
            ).to(per_sample.dtype)
            ce = (per_sample * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            aux = (k.to(ce.dtype) * ce).sum()
            terms["mwam_aux"] = aux
        return terms

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        """Gradient/hybrid mode: ``grad *= K_i`` on every parameter of ``encoders[i]`` (Alg. 1).

        Encoders shared by several modalities are left alone (use :meth:`grad_scales` with
        token-group scaling for them); then the inner method's hook runs.
        """
        if self.training and self.mode in ("gradient", "hybrid"):
            owners: dict[int, int] = {}
            for m in self.modalities:
                if m in encoders:
                    owners[id(encoders[m])] = owners.get(id(encoders[m]), 0) + 1
            grads: list[Tensor] = []
            scales: list[float] = []
            factors = self.k.tolist()
            for i, m in enumerate(self.modalities):
                if m not in encoders or owners[id(encoders[m])] > 1:
                    continue
                found = [p.grad for p in encoders[m].parameters() if p.grad is not None]
                grads.extend(found)
                scales.extend([factors[i]] * len(found))
            if grads:  # one fused multiply for every encoder parameter
                torch._foreach_mul_(grads, scales)
        self.inner.after_backward(encoders)

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        return self.inner.prepare_batch(batch, training)

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.inner.on_epoch_start(epoch, max_epochs)

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        return self.inner.lr_scale(epoch, max_epochs)

    def logged_values(self) -> dict[str, float]:
        """``mwam.frm.<m>``, ``mwam.T.<m>``, ``mwam.K.<m>`` per modality, plus the inner's values."""
        values = dict(self.inner.logged_values())
        if int(self.steps) == 0:
            return values
        frm_last, ratio, k = self.frm_last.tolist(), self.ratio.tolist(), self.k.tolist()
        for i, m in enumerate(self.modalities):
            values[f"mwam.frm.{m}"] = float(frm_last[i])
            values[f"mwam.T.{m}"] = float(ratio[i])
            values[f"mwam.K.{m}"] = float(k[i])
        return values


def _number(name: str, value: object) -> float:
    """A float option, or a :class:`ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"mwam: option {name} must be a number, got {value!r}")
    return float(value)


def _pool(feature: Tensor) -> Tensor:
    """Spatial features ``[B, C, ...]`` -> ``[B, C]`` by global average pooling; vectors unchanged."""
    return feature.flatten(2).mean(dim=2) if feature.dim() > 2 else feature
