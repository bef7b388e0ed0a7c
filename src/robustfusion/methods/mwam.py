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

Presets: ``paper`` (default; Eq. 5 with alpha=1.5, beta=1, lam=6, gamma=0.7, hybrid mode),
``released`` (what the authors' released code runs [code]: gradient mode only, lam=10, gamma=1, FRM
every step, and the recipe SGD lr 1e-3, momentum 0.9, weight decay 5e-4 through
:meth:`MWAM.training_defaults`), ``code`` (the released constants in the default hybrid mode) and
``small_batch`` (lam=4, gamma=1, the authors' values for batch sizes <= 4).

Under Adam-type optimisers a gradient scale that is constant over a few hundred steps cancels
(Adam divides each update by the running root-mean-square of its gradient), so the gradient part of
``hybrid`` does next to nothing and MWAM reduces to K-weighted auxiliary unimodal heads; the
gradient mode is an SGD method (docs/mwam.md).

Cost [ours]: the auxiliary heads run batched across modalities
(:class:`~robustfusion.modules.heads.StackedUnimodalHeads`), the gradient scaling is one fused
multiply per modality over cached parameter lists, and ``frm_every=k`` recomputes FRM, the bank and
K every ``k`` training steps (K is held in between). The method allows it because FRM on inputs is a
statistic of the data (the same sample always gives the same value) that the bank already averages
over steps; the released code computes it every step (``frm_every=1``).

Nothing is added at inference: in eval mode ``forward`` is exactly the inner method's forward.
Encoders shared by several modalities (one ViT for all tokens) are not scaled parameter-wise;
apply :func:`robustfusion.modules.grad_scale.scale_token_groups` with :meth:`MWAM.grad_scales`
to their token groups instead.

Segmentation (the task ``segmentation``: encoders return maps ``[B, C, h, w]``, targets
``[B, H, W]`` with 255 unlabelled). MWAM wraps any method that segments (``static``,
``modality_dropout``). What changes on maps:

* FRM (Eq. 4) is the paper's 2-D rule itself: with ``source="input"`` (default, the released code
  computes it on the input images [code: models/surf_baseline.py, src/freq_n.py]) on each
  modality's ``[C, H, W]`` input; with ``source="feature"`` on the encoder's map, a 2-D DCT over
  ``(h, w)`` per ``p x p`` patch (a map smaller than ``p`` uses a patch of ``min(h, w)``,
  ``modules/frequency.py``). The bank, T and K (Eqs. 2, 6, 5) are unchanged: one scalar per
  modality per batch.
* ``gradient``: unchanged, every gradient of ``encoders[i]`` times ``K_i`` (Alg. 1).
* ``loss``: the auxiliary unimodal heads are the same per-modality linear classifiers applied at
  every position of the modality's map (a 1x1 convolution; same parameters, so checkpoints keep
  their layout); by default (``aux_resolution="feature"``) their cross-entropy is taken on the
  map's grid against the label map downsampled (nearest), because upsampling them to ``(H, W)``
  (``aux_resolution="target"``, as the segmentation head) costs a fifth of a ResNet-18 step at
  240x320 with 40 classes [ours]; ``CE(y, y^_i)`` is the per-pixel cross-entropy without the ignored pixels, averaged
  per sample over its labelled pixels, then over the samples where modality ``i`` is present and
  something is labelled (a sample without a labelled pixel weighs 0) [ours: the paper defines the
  term for one label per sample].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodFacts, MethodSpec
from robustfusion.methods.wrapper import WrapperMethod
from robustfusion.modules.distributed import all_reduce_mean
from robustfusion.modules.frequency import FRM_EPS, frm_modalities
from robustfusion.modules.heads import StackedUnimodalHeads
from robustfusion.registry import METHODS
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch, FusionOutput

#: Hyperparameters of Eq. 5: the paper's defaults, the released code's (``released``, and
#: ``code``: the same constants in the default hybrid mode), and the authors' values for batch
#: sizes <= 4.
PRESETS: dict[str, dict[str, float]] = {
    "paper": {"alpha": 1.5, "beta": 1.0, "lam": 6.0, "gamma": 0.7},
    "released": {"alpha": 1.5, "beta": 1.0, "lam": 10.0, "gamma": 1.0},
    "code": {"alpha": 1.5, "beta": 1.0, "lam": 10.0, "gamma": 1.0},
    "small_batch": {"alpha": 1.5, "beta": 1.0, "lam": 4.0, "gamma": 1.0},
}
#: The mode a preset uses when ``mode`` is not given (otherwise ``hybrid``): the released code
#: scales the encoders' gradients and adds no K-weighted loss [code: lib/model_develop.py].
PRESET_MODES: dict[str, str] = {"released": "gradient"}
#: Training settings a preset implies (:meth:`MWAM.training_defaults`): the released code trains
#: with SGD, lr 1e-3, momentum 0.9 (Nesterov), weight decay 5e-4 [code: configuration/*.py,
#: src/surf_mmanet.py]. Nesterov momentum and its warm-up/step schedule are not reproduced.
PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "released": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4},
}
MODES = ("gradient", "loss", "hybrid")
#: Segmentation: where the auxiliary unimodal cross-entropy is taken: on the feature map's grid
#: against the label map downsampled (nearest), or on the target's grid with the logits upsampled
#: bilinearly (a fifth of a ResNet-18 step at 240x320 with 40 classes; ``benchmarks/``).
AUX_RESOLUTIONS = ("feature", "target")
SOURCES = ("input", "feature")
_FEATURE_KEY = "mwam.feature."
#: Extras key of the auxiliary logits, stacked in modality order: ``[M, B, C]`` (classification)
#: or ``[M, B, C, H, W]`` (segmentation, at the target's size).
AUX_LOGITS = "mwam.aux_logits"


def modulation_weight(
    ratio: Tensor, alpha: float = 1.5, beta: float = 1.0, lam: float = 6.0, gamma: float = 0.7
) -> Tensor:
    """Eq. 5: ``K = alpha - beta / (1 + exp(-lam (T - gamma)))``."""
    return alpha - beta * torch.sigmoid(lam * (ratio - gamma))


@METHODS.register(
    "mwam",
    "FRM-guided modality re-weighting during training only (wraps static, or X as mwam+X); "
    "options mode=hybrid|loss|gradient, preset=paper|released|code|small_batch, frm_every=k",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class MWAM(WrapperMethod):
    """Frequency-ratio-guided modality balancing around an inner method (every hook it does not
    change is the inner method's: :class:`~robustfusion.methods.wrapper.WrapperMethod`).

    Args:
        spec: the method spec (``input_shapes`` decide the FRM variant: 1-D for vectors).
        inner: the wrapped method; ``None`` builds :class:`StaticFusion` from ``spec``.
        mode: ``hybrid``, ``loss`` or ``gradient``; default: the preset's (``gradient`` for
            ``released``, else ``hybrid``). Under Adam the gradient part cancels (module docstring).
        preset: ``paper`` (alpha=1.5, beta=1, lam=6, gamma=0.7), ``released`` (the released code:
            gamma=1, lam=10, gradient mode, SGD recipe), ``code`` (gamma=1, lam=10, hybrid) or
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
        frm_every: recompute FRM, bank, T and K every ``k`` training steps (1: every step, as the
            released code) [ours]; K is held in between.
    """

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "alpha": number(0.0, 100.0),
        "beta": number(0.0, 100.0),
        "lam": number(0.0, 1e3),
        "gamma": number(0.0, 100.0),
        "omega": number(0.0, 1.0, open_maximum=True),
        "patch": integer(1, 4096),
        "q": integer(1, 2048),
        "eps": number(0.0, 1.0, open_minimum=True),
        "frm_every": integer(1, 100_000),
    }

    #: The trainer logs FRM, T and K every step: ``robustfusion frm`` analyses that series.
    log_every_n_steps: ClassVar[int] = 1

    def __init__(
        self,
        spec: MethodSpec,
        inner: Method | None = None,
        mode: str | None = None,
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
        frm_every: int = 1,
        aux_resolution: str = "feature",
    ) -> None:
        if aux_resolution not in AUX_RESOLUTIONS:
            raise ConfigError(
                f"mwam: aux_resolution must be {' or '.join(AUX_RESOLUTIONS)}, got "
                f"{aux_resolution!r}"
            )
        self.aux_resolution = aux_resolution
        if preset not in PRESETS:
            raise ConfigError(
                f"mwam: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        mode = PRESET_MODES.get(preset, "hybrid") if mode is None else mode
        if mode not in MODES:
            raise ConfigError(f"mwam: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
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
        if isinstance(frm_every, bool) or not isinstance(frm_every, int) or frm_every < 1:
            raise ConfigError(f"mwam: frm_every must be an integer >= 1, got {frm_every!r}")
        super().__init__(spec, inner)
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
        self.frm_every = int(frm_every)
        self.aux_heads = (
            StackedUnimodalHeads(spec.feature_dims, spec.num_classes)
            if mode != "gradient"
            else None
        )
        m = len(self.modalities)
        self.register_buffer("frm_bank", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("frm_last", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("ratio", torch.zeros(m, dtype=torch.float64))
        self.register_buffer("k", torch.ones(m))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        #: What FRM was last computed on, per modality: ``(H, W)`` of a 2-D map, ``(0, D)`` for
        #: a vector (logged as ``mwam.h.<m>``/``mwam.w.<m>`` for ``robustfusion frm``).
        self.frm_shapes: dict[str, tuple[int, int]] = {}
        self._param_cache: tuple[int, list[list[nn.Parameter]]] | None = None
        self._calls = 0  # training steps seen by this process (phase of frm_every)

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The ``released`` preset trains with SGD, lr 1e-3, momentum 0.9, weight decay 5e-4
        (the authors' configuration); the other presets imply nothing."""
        return dict(PRESET_TRAINING.get(str(options.get("preset", "paper")), {}))

    # ----------------------------------------------------------------- forward (inner's graph)
    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        output = super().forward(features, present)
        if not self.training:
            return output
        extras = dict(output.extras)
        if self.aux_heads is not None:
            if self.task.feature_kind == "map":
                extras[AUX_LOGITS] = self._map_aux_logits(features)
            else:
                pooled = {m: _pool(features[m]) for m in self.modalities}
                extras[AUX_LOGITS] = self.aux_heads(pooled)
        if self.source == "feature":
            for m in self.modalities:
                extras[_FEATURE_KEY + m] = features[m].detach()
        output.extras = extras
        return output

    def _map_aux_logits(self, features: Mapping[str, Tensor]) -> Tensor:
        """Segmentation: each modality's linear head at every position of its map ``[B, D, h, w]``
        (a 1x1 convolution), upsampled to the target's ``(H, W)``: ``[M, B, C, H, W]``."""
        assert self.aux_heads is not None
        first = features[self.modalities[0]]
        b, h, w = first.shape[0], first.shape[-2], first.shape[-1]
        if any(
            features[m].dim() != 4 or tuple(features[m].shape[-2:]) != (h, w)
            for m in self.modalities
        ):
            shapes = ", ".join(f"{m} {tuple(features[m].shape)}" for m in self.modalities)
            raise ConfigError(
                f"mwam: segmentation needs every modality's features as maps [B, C, h, w] of one "
                f"size, got {shapes}"
            )
        positions = {m: features[m].movedim(1, -1).reshape(b * h * w, -1) for m in self.modalities}
        logits = self.aux_heads(positions)  # [M, B h w, C]
        count, classes = logits.shape[0], logits.shape[-1]
        logits = logits.reshape(count * b, h, w, classes).permute(0, 3, 1, 2)
        size = tuple(int(v) for v in self.spec.target_shape[-2:])
        if self.aux_resolution == "feature":
            size = (h, w)
        elif (h, w) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.reshape(count, b, classes, *size)

    # ----------------------------------------------------------------- FRM, bank, T and K
    @torch.no_grad()
    def update_weights(self, batch: Batch, output: FusionOutput | None = None) -> Tensor:
        """Eqs. 4, 2, 6, 5 on one training batch; updates the buffers and returns ``K`` ``[M]``.

        With ``frm_every=k`` only every ``k``-th call of this process (counting from the first)
        computes; the others return the held ``K``. ``steps`` counts every call.
        """
        call = self._calls
        self._calls += 1
        self.steps.add_(1)
        if call % self.frm_every:
            return self.k
        if self.source == "feature":
            keys = [_FEATURE_KEY + m for m in self.modalities]
            if output is None or any(key not in output.extras for key in keys):
                raise ConfigError(
                    "mwam: source='feature' needs the training output of MWAM.forward"
                )
            sources = {m: output.extras[key] for m, key in zip(self.modalities, keys, strict=True)}
        else:
            sources = {m: batch.inputs[m] for m in self.modalities}
        self.frm_shapes = {m: _frm_shape(x) for m, x in sources.items()}
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
        self.frm_bank.mul_(self.omega).add_(current, alpha=1.0 - self.omega)
        torch.div(current, self.frm_bank.mean() + self.eps, out=self.ratio)
        self.k.copy_(modulation_weight(self.ratio, self.alpha, self.beta, self.lam, self.gamma))
        return self.k

    def grad_scales(self) -> dict[str, Tensor]:
        """The current ``K`` per modality, for :func:`~robustfusion.modules.grad_scale.scale_token_groups`."""
        return {m: self.k[i] for i, m in enumerate(self.modalities)}

    # ----------------------------------------------------------------- training hooks
    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        terms = dict(super().losses(output, batch))
        if not self.training:
            return terms
        k = self.update_weights(batch, output)
        if self.aux_heads is not None:
            if AUX_LOGITS not in output.extras:
                raise ConfigError("mwam: the loss mode needs the training output of MWAM.forward")
            # All unimodal cross-entropies in one call, weighted per sample by K_m / n_m
            # (n_m: samples where modality m is present; absent samples weigh 0). Segmentation:
            # per-sample means of the per-pixel CE over labelled pixels, and n_m counts only
            # samples with a labelled pixel.
            logits = output.extras[AUX_LOGITS]
            count = logits.shape[0]
            if logits.dim() > 3:  # segmentation: [M, B, C, h, w] against [B, H, W]
                target = batch.target
                if tuple(target.shape[-2:]) != tuple(logits.shape[-2:]):  # aux_resolution=feature
                    target = F.interpolate(
                        target[:, None].float(), size=logits.shape[-2:], mode="nearest"
                    )[:, 0].long()
                per_sample, labelled = _per_sample_pixel_ce(
                    logits.flatten(0, 1), target.repeat(count, *([1] * (logits.dim() - 3)))
                )
            else:
                per_sample = F.cross_entropy(
                    logits.flatten(0, 1), batch.target.repeat(count), reduction="none"
                )
                labelled = None
            with torch.no_grad():
                if all(m in batch.present for m in self.modalities):
                    mask = torch.stack([batch.present[m] for m in self.modalities])
                else:
                    ones = torch.ones(
                        batch.target.shape[0], dtype=torch.bool, device=batch.target.device
                    )
                    mask = torch.stack([batch.present.get(m, ones) for m in self.modalities])
                mask = mask.to(per_sample.dtype)
                if labelled is not None:  # a sample without a labelled pixel weighs 0
                    mask = mask * labelled.view(count, -1).to(mask.dtype)
                scale = k.to(per_sample.dtype) / mask.sum(1).clamp_min(1.0)
                weight = (mask * scale.unsqueeze(1)).flatten()
            terms["mwam_aux"] = torch.dot(per_sample, weight)
        return terms

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        """Gradient/hybrid mode: ``grad *= K_i`` on every parameter of ``encoders[i]`` (Alg. 1).

        Encoders shared by several modalities are left alone (use :meth:`grad_scales` with
        token-group scaling for them); then the inner method's hook runs.
        """
        if self.training and self.mode in ("gradient", "hybrid"):
            groups = self._encoder_parameters(encoders)
            if self.k.device.type == "cpu":  # one fused multiply for every encoder gradient
                grads: list[Tensor] = []
                scales: list[float] = []
                for params, factor in zip(groups, self.k.tolist(), strict=True):
                    found = [p.grad for p in params if p.grad is not None]
                    grads.extend(found)
                    scales.extend([factor] * len(found))
                if grads:
                    torch._foreach_mul_(grads, scales)
            else:  # one fused multiply per encoder, by a 0-d tensor (no host synchronisation)
                for i, params in enumerate(groups):
                    found = [p.grad for p in params if p.grad is not None]
                    if found:
                        torch._foreach_mul_(found, self.k[i])
        super().after_backward(encoders)

    def _encoder_parameters(self, encoders: nn.ModuleDict) -> list[list[nn.Parameter]]:
        """Per modality, the parameters of its own encoder ([] when absent or shared); cached."""
        if self._param_cache is not None and self._param_cache[0] == id(encoders):
            return self._param_cache[1]
        owners: dict[int, int] = {}
        for m in self.modalities:
            if m in encoders:
                owners[id(encoders[m])] = owners.get(id(encoders[m]), 0) + 1
        params = [
            list(encoders[m].parameters()) if m in encoders and owners[id(encoders[m])] == 1 else []
            for m in self.modalities
        ]
        self._param_cache = (id(encoders), params)
        return params

    def logged_values(self) -> dict[str, float]:
        """``mwam.frm.<m>``, ``mwam.T.<m>``, ``mwam.K.<m>`` per modality, the shape FRM was
        computed on (``mwam.h.<m>``, ``mwam.w.<m>``; ``h = 0`` for a vector), plus the inner's."""
        values = dict(super().logged_values())
        if int(self.steps) == 0:
            return values
        frm_last, ratio, k = self.frm_last.tolist(), self.ratio.tolist(), self.k.tolist()
        for i, m in enumerate(self.modalities):
            values[f"mwam.frm.{m}"] = float(frm_last[i])
            values[f"mwam.T.{m}"] = float(ratio[i])
            values[f"mwam.K.{m}"] = float(k[i])
            if m in self.frm_shapes:
                h, w = self.frm_shapes[m]
                values[f"mwam.h.{m}"] = float(h)
                values[f"mwam.w.{m}"] = float(w)
        return values


def _number(name: str, value: object) -> float:
    """A float option, or a :class:`ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"mwam: option {name} must be a number, got {value!r}")
    return float(value)


def _per_sample_pixel_ce(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel cross-entropy of ``logits [N, C, H, W]`` against ``target [N, H, W]`` without the
    task's ignored pixels (255), averaged per sample over its labelled pixels: ``([N], [N] bool)``,
    the second saying which samples have a labelled pixel (the others get 0)."""
    pixels = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    valid = (target != IGNORE_INDEX).flatten(1)
    counts = valid.sum(1)
    return pixels.flatten(1).sum(1) / counts.clamp_min(1).to(pixels.dtype), counts > 0


def _pool(feature: Tensor) -> Tensor:
    """Spatial features ``[B, C, ...]`` -> ``[B, C]`` by global average pooling; vectors unchanged."""
    return feature.flatten(2).mean(dim=2) if feature.dim() > 2 else feature


def _frm_shape(x: Tensor) -> tuple[int, int]:
    """``(H, W)`` of the maps FRM sees in ``x`` (more spatial axes fold into W, as in
    :func:`~robustfusion.modules.frequency.frm_per_sample`); ``(0, D)`` for vectors ``[B, D]``."""
    if x.dim() <= 2:
        return (0, int(x.shape[-1]) if x.dim() == 2 else 1)
    if x.dim() == 3:
        return (int(x.shape[1]), int(x.shape[2]))
    width = 1
    for size in x.shape[3:]:
        width *= int(size)
    return (int(x.shape[2]), width)
