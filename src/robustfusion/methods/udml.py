"""UDML: Unbiased Dynamic Multimodal Learning (CVPR 2026, arXiv 2603.19681; METHODS.md §3).

Per modality, a probabilistic representation ``N(mu, sigma^2)`` (:mod:`modules.probabilistic`);
a noise-intensity predictor on the detached pooled ``sigma`` gives the uncertainty
``s_m = sigma_hat_m^2``; the dependency ``alpha_m`` is the ``|logits|`` of the shared fusion head
with every other modality removed. Weights (the paper's ``g(1 / (s * alpha))``)::

    w_m = M * (s_m alpha_m)^-1 / sum_k (s_k alpha_k)^-1,   fusion input (1 + w_m) * z_m

over the ``M`` present modalities (absent ones are excluded, so ``w`` sums to the number
present). Loss ``CE_fused + gamma sum_m CE_m + beta KL(N(mu, sigma^2) || N(0, v)) +
0.1 MSE(sigma_hat, v)``.

The authors' coupling [code] (``coupling="shared"``, ``alpha_at="current"``, the default): the
unimodal logits ``CE_m`` trains on are the *shared* fusion head's output with the other modalities
removed, on the ``(1 + w)``-weighted features of this step, with gradient; ``alpha`` is read from
the same logits (no extra pass) and used from the next step on. Their classifier is one linear
layer over the concatenated weighted features (``head="linear"``: ``w`` scales each modality's
share of the logits); the task loss reaches the predictor through the weights
(``detach_uncertainty=False``). Options give our earlier variants: separate unimodal heads
(``coupling="decoupled"``), alpha measured at neutral weights (``alpha_at="neutral"``), an EMA of
alpha (``dependency_momentum``), the project's fusion heads + classifier (``head="fusion"``),
``w * z`` instead of ``(1 + w) * z`` (``fusion_form="multiplicative"``). ``preset="paper"`` is the
authors' recipe; see ``docs/udml.md`` for every option, the defaults and the measurements behind
the ones that depart from the authors.

Progressive schedule by fractions of the run [code]: clean data and alpha-only weights until
``clean_until``; noisy data from then on; full weights ``s * alpha`` from ``full_weights_from``;
learning rate x ``lr_step`` from ``lr_step_at``. Evaluation uses the stored ``alpha`` and the full
weights once training has reached their phase (a buffer saved with the weights) [ours]. Without
``on_epoch_start`` (a plain loop) the method runs in its final phase.

Noise injection (``prepare_batch``, training only): a level ``v in {1..11}`` per sample and
modality (:func:`draw_all_noise_levels`, half the samples clean), fixed per sample for the run
(``level_draw="per_run"``, [code]) or redrawn every epoch (``"per_epoch"``, [ours]). ``v = 1`` is
clean, ``v = max_level`` replaces the input by pure noise of that level's std, otherwise Gaussian
noise of std ``v^2`` 0-255 units for images, for spectrograms ``0.25 v`` in standardised units
(``spectrogram_noise="calibrated"``, [ours]: the authors' units made avdigits' audio
unlearnable) or ``v`` raw log-magnitude units when ``intensity_scale`` is known
(``"raw"``, [code]), and ``vector_noise_scale * v`` for vectors [ours]. Maps (kind ``map``) with a
known ``intensity_scale`` (depth: stored change per metre) get the images' rule on the map written
as an 8-bit image over ``map_noise_range`` raw units (10 m, NYU Depth v2's range, over which
``nyudv2``'s classification layout writes its depth image): std ``v^2 * map_noise_range / 255``
**metres** of depth (v = 2: 0.16 m, 4: 0.63 m, 10: 3.9 m), the same physical noise as that depth
image gets [ours]; maps without a known scale (a generic ``.npz``) get ``vector_noise_scale * v``
in stored units as before.

Segmentation (``task="segmentation"``; encoders give maps ``[B, C, h, w]``, targets
``[B, H, W]`` with 255 unlabelled) [ours: the paper reports NYU Depth v2 mIoU, but its summary gives
no segmentation recipe and no equation numbers, and the released code has only classification]:

* the probabilistic heads are the map heads above (1x1 conv + BatchNorm2d, [code]) for every
  modality, and ``z_m`` *stays a map*: no pooling before the shared head;
* the noise predictor still reads the detached, spatially pooled ``sigma``, so ``s_m`` and the KL
  (summed over channels and positions, against the sample's ``v``) and ``MSE(sigma_hat, v)`` stay
  per sample; the weights ``w = g(1 / (s * alpha))`` are per sample ``[B, M]``, broadcast over
  positions (``(1 + w_m) z_m`` on the whole map);
* the shared head is the map fusion (``concat`` or ``sum``, position by position) and the task's
  :class:`~robustfusion.modules.segmentation_head.SegmentationHead` (``head="fusion"``; the authors'
  linear layer of one label per sample, ``head="linear"``, is refused); the unimodal logits of
  ``CE_m`` are that head's ``[B, K, H, W]`` output with the other modalities removed
  (``coupling="shared"``), or a separate segmentation head per modality (``"decoupled"``);
* ``CE`` and every ``CE_m`` are the task's per-pixel loss over labelled pixels (``CE_m`` over the
  samples where ``m`` is present);
* ``alpha_m`` of a sample is ``sum_c |logits|`` averaged over its pixels (all of them: it reads no
  target, so evaluation computes it the same way); measurement-only passes leave the head's
  BatchNorm running statistics unchanged.

Weight swaps (``has_dynamic_weights``): ``weights="uniform"`` trains the uniform twin (every
``w_m = 1``); ``set_weight_mode`` swaps the weights at evaluation (``Method.swap_weights``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import (
    Method,
    MethodFacts,
    MethodSpec,
    output_head,
    trained_weights_option,
)
from robustfusion.modules.dependency import (
    DependencyTracker,
    dependency_from_solo,
    kept_norm_statistics,
    per_sample_dependency,
    solo_logits,
)
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.heads import UnimodalHeads
from robustfusion.modules.linear_head import ConcatLinearHead
from robustfusion.modules.noise_estimator import StackedNoiseEstimators, pool_map
from robustfusion.modules.noise_levels import draw_all_noise_levels
from robustfusion.modules.probabilistic import (
    ProbabilisticHead,
    StackedProbabilisticHeads,
    kl_from_statistics,
    kl_sufficient_statistics,
)
from robustfusion.registry import METHODS
from robustfusion.rng import stream
from robustfusion.types import Batch, FusionOutput

_DEFAULT_IMAGE_SCALE = 1.0 / 255.0
#: Raw units (metres of depth) that 0-255 spans when a map is written as an image: the training
#: noise of a map with a known ``intensity_scale`` is the images' ``v^2`` 0-255 units on that
#: scale, ``v^2 * MAP_NOISE_RANGE / 255`` raw units (10 m: NYU Depth v2's range, over which
#: ``nyudv2``'s classification layout writes its depth image, so both layouts get the same noise).
MAP_NOISE_RANGE = 10.0
#: Calibrated noise std per level for spectrograms, in stored (standardised) units: level 4 at
#: the data's own std, level 10 at 2.5x. Used by ``spectrogram_noise="calibrated"`` and when the raw
#: log-magnitude scale is unknown (docs/udml.md, "Spectrogram noise": measured on avdigits, where
#: the authors' raw units make the audio unlearnable).
SPECTROGRAM_FALLBACK_SCALE = 0.25

#: Option values each preset implies; an option given explicitly wins. ``paper``: the authors'
#: released recipe (CREMA-D); ``default``: ours (departures documented in docs/udml.md).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "gamma": 4.0,
        "beta": 1e-5,
        "coupling": "shared",
        "alpha_at": "current",
        "dependency_momentum": 0.0,
        "head": "linear",
        "detach_uncertainty": False,
        "level_draw": "per_run",
        "spectrogram_noise": "raw",
        "vector_norm": "batch",
        "map_norm": "batch",
        "fusion_form": "residual",
        "clean_until": 0.5,
        "full_weights_from": 0.6,
    },
}
#: Ours: the authors' recipe with the calibrated spectrogram noise (docs/udml.md, "Spectrogram
#: noise"). LayerNorm vector heads with a warm-up to 0.2/0.3 (``vector_norm="layer",
#: clean_until=0.2, full_weights_from=0.3``) remove the clean cost on the sensor suite's development
#: half but make the weights inert (docs/udml.md, "Clean cost"), so they are options, not the default.
PRESETS["default"] = {**PRESETS["paper"], "spectrogram_noise": "calibrated"}
#: ``preset="paper"``: the authors' optimiser and clipping (main_auxi_weight_udml.py).
PAPER_TRAINING = {
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "gradient_clip_val": 40.0,
}
_CHOICES = {
    "coupling": ("shared", "decoupled"),
    "alpha_at": ("current", "neutral"),
    "head": ("linear", "fusion"),
    "level_draw": ("per_run", "per_epoch"),
    "spectrogram_noise": ("calibrated", "raw"),
    "vector_norm": ("batch", "layer", "layer_mu"),
    "map_norm": ("batch", "layer"),
    "fusion_form": ("residual", "multiplicative"),
}
#: Fusion heads for which the authors' single linear layer exists (sum of per-modality linear
#: maps is the same layer as one linear map of the concatenation).
_LINEAR_FUSIONS = ("concat", "sum")


class MapUnimodalHeads(nn.Module):
    """Segmentation's separate unimodal heads (``coupling="decoupled"``): the task's head
    (:func:`~robustfusion.methods.base.output_head`) on each modality's map,
    ``{m: [B, D_m, h, w]} -> {m: [B, K, H, W]}``."""

    def __init__(self, spec: MethodSpec, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: output_head(spec, d) for m, d in dims.items()})

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: head(features[m]) for m, head in self.heads.items()}


def _flag(name: str, value: object) -> bool:
    """A boolean option; a string such as ``"false"`` is an error, not ``True``."""
    if not isinstance(value, bool):
        raise ConfigError(f"udml: option {name} must be true or false, got {value!r}")
    return value


def _choice(name: str, value: object) -> str:
    if value not in _CHOICES[name]:
        raise ConfigError(
            f"udml: option {name} must be one of {', '.join(_CHOICES[name])}, got {value!r}"
        )
    return str(value)


def _phase_start(fraction: float, max_epochs: int) -> int:
    """First epoch at or after ``fraction`` of the run (robust to float rounding: 0.7 * 10 -> 7)."""
    return math.ceil(fraction * max_epochs - 1e-9)


def _groups(names: list[str], dims: Mapping[str, int]) -> list[tuple[str, ...]]:
    """Modalities grouped by size (first-appearance order), for stacked per-modality modules."""
    groups: dict[int, list[str]] = {}
    for m in names:
        groups.setdefault(int(dims[m]), []).append(m)
    return [tuple(g) for g in groups.values()]


@METHODS.register(
    "udml",
    "noise-aware uncertainty (s) divided by modality dependency (alpha): w = g(1 / (s * alpha))",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class UDML(Method):
    """Unbiased dynamic fusion; see the module docstring and docs/udml.md for the options."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "gamma": number(0.0, 1e3),
        "beta": number(0.0, 1e3),
        "mse_weight": number(0.0, 1e3),
        "dependency_momentum": number(0.0, 1.0, open_maximum=True),
        "dependency_every": integer(1, 100_000),
        "clean_until": number(0.0, 1.0),
        "full_weights_from": number(0.0, 1.0),
        "lr_step_at": number(0.0, 1.0),
        "lr_step": number(0.0, 1e3, open_minimum=True),
        "max_level": integer(2, 1000),
        "vector_noise_scale": number(0.0, 1e3),
        "spectrogram_noise_scale": number(0.0, 1e3),
        "map_noise_range": number(0.0, 1e6, open_minimum=True),
        "seed": integer(0, 2**32 - 1),
    }

    wants_spatial_features = True
    has_dynamic_weights = True

    def __init__(
        self,
        spec: MethodSpec,
        preset: str = "default",
        weights: str = "learned",
        gamma: float | None = None,
        beta: float | None = None,
        mse_weight: float = 0.1,
        coupling: str | None = None,
        alpha_at: str | None = None,
        dependency_momentum: float | None = None,
        dependency_every: int = 1,
        head: str | None = None,
        fusion_form: str | None = None,
        per_sample_dependency: bool = False,
        use_dependency: bool = True,
        use_estimator: bool = True,
        probabilistic: bool = True,
        detach_uncertainty: bool | None = None,
        clean_until: float | None = None,
        full_weights_from: float | None = None,
        lr_step_at: float = 0.7,
        lr_step: float = 0.1,
        max_level: int = 11,
        level_draw: str | None = None,
        vector_noise_scale: float = 0.1,
        spectrogram_noise: str | None = None,
        spectrogram_noise_scale: float | None = None,
        map_noise_range: float = MAP_NOISE_RANGE,
        vector_norm: str | None = None,
        map_norm: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(spec)
        if len(self.modalities) < 2:
            raise ConfigError(
                f"udml needs at least 2 modalities, got {len(self.modalities)}; use 'static' or "
                "'unimodal' for a single modality"
            )
        if preset not in PRESETS:
            raise ConfigError(f"udml: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        self.preset = preset
        given = {
            "gamma": gamma,
            "beta": beta,
            "coupling": coupling,
            "alpha_at": alpha_at,
            "dependency_momentum": dependency_momentum,
            "head": head,
            "detach_uncertainty": detach_uncertainty,
            "level_draw": level_draw,
            "spectrogram_noise": spectrogram_noise,
            "vector_norm": vector_norm,
            "map_norm": map_norm,
            "fusion_form": fusion_form,
            "clean_until": clean_until,
            "full_weights_from": full_weights_from,
        }
        resolved = {k: PRESETS[preset][k] if v is None else v for k, v in given.items()}
        clean_until = float(resolved["clean_until"])
        full_weights_from = float(resolved["full_weights_from"])
        maps = self.task.feature_kind == "map"
        if head is None and (maps or spec.fusion not in _LINEAR_FUSIONS):
            # the linear layer exists for concat/sum only, and for vectors (one label per sample)
            resolved["head"] = "fusion"
        if not 0.0 <= clean_until <= full_weights_from <= 1.0:
            raise ConfigError(
                f"udml: need 0 <= clean_until ({clean_until}) <= full_weights_from "
                f"({full_weights_from}) <= 1; set them as fractions of the run"
            )
        if not 0.0 <= lr_step_at <= 1.0 or lr_step <= 0:
            raise ConfigError(
                f"udml: lr_step_at must be a fraction in [0, 1] and lr_step > 0, got "
                f"{lr_step_at} and {lr_step}"
            )
        if max_level < 2:
            raise ConfigError(f"udml: max_level must be at least 2, got {max_level}")
        momentum = float(resolved["dependency_momentum"])
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"udml: dependency_momentum must be in [0, 1), got {momentum}")
        if not isinstance(dependency_every, int) or dependency_every < 1:
            raise ConfigError(
                f"udml: dependency_every must be a positive integer, got {dependency_every!r}"
            )
        for name in _CHOICES:
            resolved[name] = _choice(name, resolved[name])
        if resolved["head"] == "linear" and maps:
            raise ConfigError(
                f"udml: head=linear is the authors' linear classifier of one label per sample; "
                f"for {spec.task} use head=fusion (the map fusion and the task's head)"
            )
        if resolved["head"] == "linear" and spec.fusion not in _LINEAR_FUSIONS:
            raise ConfigError(
                f"udml: head=linear is the authors' linear layer over concatenated features and "
                f"exists for --fusion concat or sum, not {spec.fusion!r}; use head=fusion"
            )
        self.trained_weights = trained_weights_option("udml", weights)
        self.gamma = float(resolved["gamma"])
        self.beta = float(resolved["beta"])
        self.mse_weight = float(mse_weight)
        self.coupling = resolved["coupling"]
        self.alpha_at = resolved["alpha_at"]
        self.head_kind = resolved["head"]
        self.fusion_form = resolved["fusion_form"]
        self.level_draw = resolved["level_draw"]
        self.spectrogram_noise = resolved["spectrogram_noise"]
        self.per_sample = _flag("per_sample_dependency", per_sample_dependency)
        self.use_dependency = _flag("use_dependency", use_dependency)
        self.use_estimator = _flag("use_estimator", use_estimator)
        self.probabilistic = _flag("probabilistic", probabilistic)
        self.detach_uncertainty = _flag("detach_uncertainty", resolved["detach_uncertainty"])
        if self.per_sample and dependency_every != 1:
            raise ConfigError(
                "udml: per_sample_dependency needs each sample's alpha at every step; "
                "leave dependency_every at 1"
            )
        self.dependency_every = dependency_every
        self.clean_until = float(clean_until)
        self.full_weights_from = float(full_weights_from)
        self.lr_step_at = float(lr_step_at)
        self.lr_step = float(lr_step)
        self.max_level = int(max_level)
        self.vector_noise_scale = float(vector_noise_scale)
        self.spectrogram_noise_scale = (
            None if spectrogram_noise_scale is None else float(spectrogram_noise_scale)
        )
        if not map_noise_range > 0:
            raise ConfigError(f"udml: map_noise_range must be > 0, got {map_noise_range}")
        self.map_noise_range = float(map_noise_range)
        self.seed = int(spec.seed if seed is None else seed)

        dims = {m: int(spec.feature_dims[m]) for m in self.modalities}
        #: Segmentation: every representation stays a map, fused position by position.
        self._keep_maps = maps
        self._maps = tuple(m for m in self.modalities if maps or self._spatial(m))
        vectors = [m for m in self.modalities if m not in self._maps]
        self.map_heads = nn.ModuleDict(
            {
                m: ProbabilisticHead(dims[m], dims[m], spatial=True, map_norm=resolved["map_norm"])
                for m in self._maps
            }
        )
        self._vector_groups = _groups(vectors, dims)
        self.vector_heads = nn.ModuleList(
            [
                StackedProbabilisticHeads(len(g), dims[g[0]], dims[g[0]], resolved["vector_norm"])
                for g in self._vector_groups
            ]
        )
        self._estimator_groups = _groups(list(self.modalities), dims) if self.use_estimator else []
        self.estimators = nn.ModuleList(
            [StackedNoiseEstimators(len(g), dims[g[0]]) for g in self._estimator_groups]
        )
        if self.head_kind == "linear":
            self.linear_head: ConcatLinearHead | None = ConcatLinearHead(dims, spec.num_classes)
        else:
            self.linear_head = None
            self.fusion = build_fusion(spec.fusion, dims, spec.hidden_dim, maps=maps)
            self.classifier = output_head(spec, spec.hidden_dim)
        self.unimodal: nn.Module | None = None
        if self.coupling == "decoupled":
            self.unimodal = (
                MapUnimodalHeads(spec, dims) if maps else UnimodalHeads(dims, spec.num_classes)
            )
        self.dependency = DependencyTracker(len(self.modalities), momentum)
        # Set once training reaches the full-weights phase; evaluation uses s * alpha only then,
        # so a model selected from an earlier epoch keeps the alpha-only weights it trained with.
        self.register_buffer("estimator_ready", torch.zeros((), dtype=torch.bool))
        self._epoch = 0
        self._max_epochs = 0
        self._step = 0
        self._last: dict[str, Tensor] = {}

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``preset="paper"``: SGD lr 1e-3, momentum 0.9, weight decay 1e-4, clipping 40
        (the authors' ``main_auxi_weight_udml.py``); the default preset: none (ours)."""
        return dict(PAPER_TRAINING) if options.get("preset") == "paper" else {}

    # ----------------------------------------------------------------- schedule
    def _spatial(self, modality: str) -> bool:
        shape = self.spec.input_shapes.get(modality)
        return shape is not None and len(shape) >= 2

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self._epoch = int(epoch)
        self._max_epochs = int(max_epochs)

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        return self.lr_step if epoch >= _phase_start(self.lr_step_at, max_epochs) else 1.0

    def selectable_epoch(self, epoch: int, max_epochs: int) -> bool:
        """Validation selects among the full-weights epochs only (and always the last one): an
        earlier model has never used its estimator, and clean validation data would favour it."""
        if max_epochs <= 0:
            return True
        return epoch >= _phase_start(self.full_weights_from, max_epochs) or epoch >= max_epochs - 1

    def in_clean_phase(self) -> bool:
        """Training on clean data (noise injection off)?"""
        return self._max_epochs > 0 and self._epoch < _phase_start(
            self.clean_until, self._max_epochs
        )

    def uses_full_weights(self) -> bool:
        """Weights from ``s * alpha`` (else alpha only)? In evaluation: once training got there."""
        if not self.training:
            return bool(self.estimator_ready)
        if self._max_epochs == 0:
            return True
        return self._epoch >= _phase_start(self.full_weights_from, self._max_epochs)

    # ----------------------------------------------------------------- noise injection
    def noise_std(self, modality: str, level: Tensor) -> Tensor:
        """Per-sample noise std in stored units for levels ``v`` (see the module docstring)."""
        kind = self.spec.input_kinds.get(modality, "vector")
        scale = self.spec.input_scales.get(modality)
        if kind == "image":
            return level.pow(2) * float(scale or _DEFAULT_IMAGE_SCALE)
        if kind == "map" and scale:
            # v^2 0-255 units of the map written as an image over map_noise_range raw units
            return level.pow(2) * (self.map_noise_range / 255.0 * float(scale))
        if kind == "spectrogram":
            if self.spectrogram_noise_scale is not None:
                return level * self.spectrogram_noise_scale
            if self.spectrogram_noise == "raw" and scale:
                return level * float(scale)  # std v in raw ln|X| units [code]
            return level * SPECTROGRAM_FALLBACK_SCALE
        return level * self.vector_noise_scale

    def inject(self, batch: Batch, levels: Mapping[str, Tensor], epoch: int = 0) -> Batch:
        """Apply noise levels ``{m: FloatTensor[B]}`` to a batch; sets ``batch.noise_level``.

        ``v = 1`` leaves the input unchanged, ``v >= max_level`` replaces it by pure noise. The
        noise of every modality comes from one draw per sample (``udml-noise``, keyed on
        ``(seed, epoch, sample index)``; modality ``m`` takes its slice in modality order), so
        it does not depend on the batch. Absent modalities are left alone.
        """
        chosen = [(j, m) for j, m in enumerate(self.modalities) if m in levels]
        if not chosen:
            return batch
        index = batch.index
        sizes = [batch.inputs[m][0].numel() for _, m in chosen]
        offsets = [0]
        for m in self.modalities:
            offsets.append(offsets[-1] + (batch.inputs[m][0].numel() if m in levels else 0))
        first = batch.inputs[chosen[0][1]]
        work = torch.float64 if first.dtype == torch.float64 else torch.float32
        noise = stream(self.seed, "udml-noise", "train", int(epoch)).normal(
            index.to(first.device), (offsets[-1],), dtype=work
        )
        inputs = dict(batch.inputs)
        noise_level = dict(batch.noise_level)
        for (j, m), size in zip(chosen, sizes, strict=True):
            x = batch.inputs[m]
            present = batch.present[m].to(x.device)
            v = levels[m].to(x.device, x.dtype).reshape(-1).expand(x.shape[0])
            v = torch.where(present, v, torch.ones_like(v))
            shape = (-1,) + (1,) * (x.dim() - 1)
            pure = (v >= self.max_level).view(shape)
            std = torch.where(v > 1, self.noise_std(m, v), torch.zeros_like(v)).view(shape)
            eps = noise[:, offsets[j] : offsets[j] + size].reshape(x.shape).to(x.dtype)
            noisy = torch.where(pure, torch.zeros_like(x), x) + std * eps
            inputs[m] = torch.where((v > 1).view(shape), noisy, x)
            noise_level[m] = v
        return batch.replace(inputs=inputs, noise_level=noise_level)

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        """Training: inject per-sample noise levels after the clean phase (``v = 1`` before)."""
        if not training:
            return batch
        if self.in_clean_phase():
            ones = torch.ones(batch.batch_size, device=batch.target.device)
            return batch.replace(noise_level={m: ones for m in self.modalities})
        draw_epoch = self._epoch if self.level_draw == "per_epoch" else 0
        levels = draw_all_noise_levels(
            batch.index, self.seed, draw_epoch, len(self.modalities), self.max_level
        )
        return self.inject(
            batch, {m: levels[:, j] for j, m in enumerate(self.modalities)}, epoch=self._epoch
        )

    # ----------------------------------------------------------------- representation
    def _keep(self, z: Tensor) -> Tensor:
        """The representation the shared head reads: the map itself for segmentation, else
        pooled to a vector."""
        return z if self._keep_maps else pool_map(z)

    def _head_input(self, modality: str, feature: Tensor) -> Tensor:
        """Adapt an encoder output to its head's layout (pool a map for a vector head, or view a
        vector as a 1x1 map for a map head) so that custom encoders work either way."""
        if modality in self.map_heads:
            return feature if feature.dim() == 4 else feature.reshape(*feature.shape[:2], 1, 1)
        return pool_map(feature)

    def _sample(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, sigma)``: ``z = mu + eps * sigma`` in training, ``mu`` in evaluation."""
        std = torch.exp(0.5 * logvar)
        if not self.training:
            return mu, std
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device)
        return mu + eps * std, std

    def _represent(
        self, features: Mapping[str, Tensor], extras: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Pooled representations ``z`` and the predictor inputs (pooled ``sigma``) per modality.

        Fills ``extras`` with ``mu/<m>``, ``logvar/<m>`` and, when probabilistic, the KL's
        sufficient statistics ``kl_stats`` ``[B, M, 2]`` and feature counts ``kl_sizes`` ``[M]``.
        """
        pooled: dict[str, Tensor] = {}
        sigma_in: dict[str, Tensor] = {}
        stats: dict[str, Tensor] = {}
        sizes: dict[str, int] = {}
        for m in self._maps:
            head = self.map_heads[m]
            f = self._head_input(m, features[m])
            if self.probabilistic:
                mu, logvar = head(f)
                z, std = self._sample(mu, logvar)
                sigma_in[m] = pool_map(std).detach()
                extras[f"mu/{m}"], extras[f"logvar/{m}"] = mu, logvar
                stats[m] = kl_sufficient_statistics(mu, logvar, std)
                sizes[m] = mu[0].numel()
            else:
                z = head.mu(f)
                # Learned sigma proxy: the logvar branch on detached features, trained by MSE only.
                sigma_in[m] = pool_map(torch.exp(0.5 * head.logvar(f.detach())))
            pooled[m] = self._keep(z)
        for group, heads in zip(self._vector_groups, self.vector_heads, strict=True):
            stacked = torch.stack([self._head_input(m, features[m]) for m in group])
            mu, logvar = heads(stacked, detach_logvar_input=not self.probabilistic)
            if self.probabilistic:
                z, std = self._sample(mu, logvar)
                sigma = std.detach()
                group_stats = kl_sufficient_statistics(mu, logvar, std, row_dims=2).unbind(0)
            else:
                z, sigma = mu, torch.exp(0.5 * logvar)
            # unbind, not z[j]: one backward op instead of one full-size zero tensor per modality
            zs, sigmas = z.unbind(0), sigma.unbind(0)
            mus, logvars = mu.unbind(0), logvar.unbind(0)
            for j, m in enumerate(group):
                pooled[m], sigma_in[m] = zs[j], sigmas[j]
                if self.probabilistic:
                    extras[f"mu/{m}"], extras[f"logvar/{m}"] = mus[j], logvars[j]
                    stats[m], sizes[m] = group_stats[j], mu.shape[2]
        if self.probabilistic:
            mods = self.modalities
            extras["kl_stats"] = torch.stack([stats[m] for m in mods], dim=1)
            extras["kl_sizes"] = torch.tensor(
                [float(sizes[m]) for m in mods], dtype=extras["kl_stats"].dtype
            ).to(extras["kl_stats"].device)
        return pooled, sigma_in

    def _sigma_hat(self, sigma_in: Mapping[str, Tensor], extras: dict[str, Tensor]) -> Tensor:
        """``[B, M]`` predicted noise levels; fills ``extras["sigma_hat/<m>"]``."""
        values: dict[str, Tensor] = {}
        for group, estimator in zip(self._estimator_groups, self.estimators, strict=True):
            out = estimator(torch.stack([sigma_in[m] for m in group])).unbind(0)
            for j, m in enumerate(group):
                values[m] = out[j]
                extras[f"sigma_hat/{m}"] = out[j]
        return torch.stack([values[m] for m in self.modalities], dim=1)

    # ----------------------------------------------------------------- logits
    def _shared_head(self) -> tuple[nn.Module, ...]:
        """The modules of the shared head (whose BatchNorm statistics, if any, a measurement
        pass must leave alone)."""
        if self.linear_head is not None:
            return (self.linear_head,)
        return (self.fusion, self.classifier)

    def _fused_logits(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], weights: Tensor
    ) -> Tensor:
        """The shared head: ``[B, C]`` logits (``[B, C, H, W]`` for segmentation) of the weighted
        features (``weights`` = fusion scale)."""
        if self.linear_head is not None:
            return self.linear_head(features, present, weights)
        return self.classifier(self.fusion(features, present, weights))

    def _logits_and_solo(
        self, pooled: Mapping[str, Tensor], present: Mapping[str, Tensor], scale: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Fused ``[B, C]`` and single-modality ``[M, B, C]`` logits of the shared head, with
        gradient, from one batched pass."""
        if self.linear_head is not None:
            return self.linear_head.with_solo(pooled, present, scale)
        fused, solo = solo_logits(
            self._fused_logits, pooled, present, self.modalities, scale, include_fused=True
        )
        assert fused is not None
        return fused, solo

    def _neutral_scale(self, like: Tensor) -> Tensor:
        """Fusion scale of ``w = 1`` for every modality: ``2`` (residual) or ``1``."""
        return torch.full_like(like, 2.0 if self.fusion_form == "residual" else 1.0)

    # ----------------------------------------------------------------- forward
    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        mods = self.modalities
        extras: dict[str, Tensor] = {}
        pooled, sigma_in = self._represent(features, extras)
        first = pooled[mods[0]]
        dtype, device = first.dtype, first.device
        mask = torch.stack([present[m] for m in mods], dim=1).to(device)
        maskf = mask.to(dtype)
        ones = torch.ones_like(maskf)
        if self.training:
            self._step += 1
        measure = (
            self.training
            and self.use_dependency
            and ((self._step - 1) % self.dependency_every == 0)
        )

        alpha = ones
        sample_alpha: Tensor | None = None
        if self.use_dependency:
            if self.per_sample:
                # A sample's own alpha must exist before its weights: measured at neutral weights.
                with kept_norm_statistics(*self._shared_head()):
                    sample_alpha = per_sample_dependency(
                        self._fused_logits,
                        {m: p.detach() for m, p in pooled.items()},
                        present,
                        mods,
                        self._neutral_scale(maskf),
                    )
                alpha = torch.where(mask, sample_alpha, ones)
            else:
                # A copy: the tracker is updated in place below, after the weights used it.
                alpha = self.dependency.alpha.to(device, dtype).clone().expand_as(maskf)

        uncertainty = ones
        full = self.uses_full_weights()
        if self.training and full:
            self.estimator_ready.fill_(True)
        if self.use_estimator:
            sigma_hat = self._sigma_hat(sigma_in, extras)
            if full:
                uncertainty = sigma_hat.pow(2)
                if self.detach_uncertainty:
                    uncertainty = uncertainty.detach()

        inverse = maskf / (uncertainty * alpha).clamp_min(1e-6)
        learned = inverse / inverse.sum(dim=1, keepdim=True).clamp_min(1e-12)
        used = self.swap_weights(learned, present)
        count = mask.sum(dim=1, keepdim=True).to(dtype)
        weights = used * count  # the native scale: sums to the number present
        scale = 1.0 + weights if self.fusion_form == "residual" else weights

        if self.coupling == "shared":
            logits, solo = self._logits_and_solo(pooled, present, scale)
            unimodal = dict(zip(mods, solo.unbind(0), strict=True))
        else:
            logits = self._fused_logits(pooled, present, scale)
            assert self.unimodal is not None
            unimodal = self.unimodal(pooled)
            solo = None

        if measure:
            if sample_alpha is not None:
                batch_alpha = sample_alpha
            elif self.alpha_at == "current" and solo is not None:
                batch_alpha = dependency_from_solo(solo, mask)
            else:
                at = scale if self.alpha_at == "current" else self._neutral_scale(maskf)
                detached = {m: p.detach() for m, p in pooled.items()}
                with kept_norm_statistics(*self._shared_head()):
                    batch_alpha = per_sample_dependency(
                        self._fused_logits, detached, present, mods, at.detach()
                    )
            self.dependency.update(batch_alpha, mask)

        extras.update({"udml_weights": weights, "uncertainty": uncertainty, "dependency": alpha})
        if self.training:
            self._last = {
                "weights": weights.detach(),
                "uncertainty": uncertainty.detach(),
                "mask": mask.detach(),
            }
        return FusionOutput(
            logits=logits,
            weights=used,
            modalities=mods,
            unimodal_logits=unimodal,
            extras=extras,
        )

    # ----------------------------------------------------------------- losses
    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """``ce + gamma * unimodal_ce + beta * kl + mse_weight * noise_mse``: each per-modality
        term is a mean over the samples where the modality is present, summed over modalities;
        ``v = 1`` where the batch carries no noise level."""
        mods = self.modalities
        target = batch.target
        logits = output.logits
        dtype = logits.dtype
        mask = torch.stack([batch.present[m] for m in mods], dim=1).to(logits.device, dtype)
        seen = mask.sum(dim=0)
        share = mask / seen.clamp_min(1.0)  # [B, M]: each present sample's share of its mean
        ones = torch.ones(target.shape[0], device=logits.device, dtype=dtype)
        levels = torch.stack(
            [batch.noise_level.get(m, ones).to(logits.device, dtype) for m in mods], dim=1
        )
        terms = {"ce": self.task.loss(logits, target)}
        if self._keep_maps:
            terms["unimodal_ce"] = self.gamma * self._unimodal_map_loss(output, batch)
        else:
            solo = torch.stack([output.unimodal_logits[m] for m in mods])  # [M, B, C]
            rows = F.cross_entropy(
                solo.flatten(0, 1), target.repeat(len(mods)), reduction="none"
            ).view(len(mods), -1)
            terms["unimodal_ce"] = self.gamma * (rows.t() * share).sum()
        if self.probabilistic:
            kl = kl_from_statistics(output.extras["kl_stats"], output.extras["kl_sizes"], levels)
            terms["kl"] = self.beta * (kl * share).sum()
        if self.use_estimator:
            sigma_hat = torch.stack([output.extras[f"sigma_hat/{m}"] for m in mods], dim=1)
            terms["noise_mse"] = self.mse_weight * ((sigma_hat - levels).pow(2) * share).sum()
        return terms

    def _unimodal_map_loss(self, output: FusionOutput, batch: Batch) -> Tensor:
        """Segmentation: ``sum_m`` the task's loss of modality ``m``'s ``[B, K, H, W]`` logits over
        the labelled pixels of the samples where ``m`` is present (its other samples' pixels are
        set to the ignore index; a modality with no such pixel adds 0)."""
        ignore = self.task.ignore_index
        assert ignore is not None
        total = output.logits.new_zeros(())
        for m in self.modalities:
            seen = batch.present[m].to(batch.target.device)
            seen = seen.view(-1, *([1] * (batch.target.dim() - 1)))
            target = torch.where(seen, batch.target, torch.full_like(batch.target, ignore))
            total = total + self.task.loss(output.unimodal_logits[m], target)
        return total

    def logged_values(self) -> dict[str, float]:
        """Dependency ``alpha``, mean uncertainty ``s`` and mean weight ``w`` per modality."""
        rows = [self.dependency.alpha.detach().float().cpu()]
        names = ["alpha"]
        if self._last:
            mask = self._last["mask"].to(self._last["weights"].dtype)
            seen = mask.sum(dim=0).clamp_min(1.0)
            rows.append(((self._last["weights"] * mask).sum(dim=0) / seen).float().cpu())
            rows.append(((self._last["uncertainty"] * mask).sum(dim=0) / seen).float().cpu())
            names += ["weight", "uncertainty"]
        table = torch.stack(rows).tolist()  # one transfer for every value
        return {
            f"{name}/{m}": table[i][j]
            for i, name in enumerate(names)
            for j, m in enumerate(self.modalities)
        }
