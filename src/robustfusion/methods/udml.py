"""UDML: Unbiased Dynamic Multimodal Learning (CVPR 2026, arXiv 2603.19681; METHODS.md §3).

Per modality, a probabilistic representation ``N(mu, sigma^2)`` (:class:`ProbabilisticHead`);
a noise-intensity predictor on the detached pooled ``sigma`` gives the uncertainty
``s_m = sigma_hat_m^2``; the dependency ``alpha_m`` is the mean ``|logit|`` of the shared fusion
head with every other modality removed. Weights (the paper's ``g(1 / (s * alpha))``)::

    w_m = M * (s_m alpha_m)^-1 / sum_k (s_k alpha_k)^-1,   fusion input (1 + w_m) * z_m

over the ``M`` present modalities (absent ones are excluded, so ``w`` sums to the number
present). Loss ``CE_fused + gamma sum_m CE_m + beta KL(N(mu, sigma^2) || N(0, v)) + 0.1 MSE(sigma_hat, v)``.

Progressive schedule by fractions of the run [code]: clean data and alpha-only weights until
``clean_until``; noisy data from then on; full weights ``s * alpha`` from ``full_weights_from``;
learning rate x ``lr_step`` from ``lr_step_at``. Evaluation uses the moving-average ``alpha`` and
the full weights once training has reached their phase (a buffer saved with the weights, so that a
model selected on validation from an earlier epoch is evaluated as it was trained). Without
``on_epoch_start`` (a plain loop that never calls it) the method runs in its final phase: noise
injection and full weights.

Noise injection (``prepare_batch``, training only) [code + ours]: a level ``v in {1..11}`` per
sample and modality (:func:`draw_noise_levels`, half the samples clean); ``v = 1`` is clean,
``v = max_level`` replaces the input by pure noise, otherwise Gaussian noise is added with std
``v^2`` in 0-255 units for images (``MethodSpec.input_scales``; ``1/255`` when unknown, i.e. images
stored in [0, 1]), ``spectrogram_noise_scale * v`` for spectrograms (in their standardised units)
and ``vector_noise_scale * v`` for every other kind (standardised vectors: ``0.1 * v`` puts
``v = 10`` at signal-to-noise 1 and ``v = 11`` at pure noise of std 1.1).

Deviations and options [ours]:

* ``per_sample_dependency=True`` uses each sample's own ``alpha`` (the paper's stated limitation)
  instead of the global moving average.
* ``vector_norm="batch"`` normalises the vector heads with BatchNorm1d instead of the paper's
  LayerNorm, which removes each sample's overall scale of ``logvar`` (see notes/issue-5.md).
* ``detach_uncertainty=True`` (default): the weights do not back-propagate into the predictor,
  which is then trained by its MSE alone (the released code lets the task loss reach it).
* ``alpha`` is measured at neutral weights ``w = 1`` (fusion input ``2 z_m``) so that it does not
  feed back on itself.
* Ablations: ``use_dependency=False`` (estimator only, ``alpha = 1``); ``use_estimator=False``
  (``alpha`` only: no predictor, no MSE, ``s = 1``); ``probabilistic=False`` (deterministic
  ``z = mu``, no KL; the predictor reads a *learned sigma proxy*: the logvar branch applied to the
  detached encoder features and trained by the MSE loss alone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec
from robustfusion.modules.dependency import DependencyTracker, per_sample_dependency
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.heads import UnimodalHeads
from robustfusion.modules.noise_estimator import NoiseEstimator, noise_level_loss, pool_map
from robustfusion.modules.noise_levels import draw_noise_levels, noise_seeds
from robustfusion.modules.probabilistic import ProbabilisticHead, gaussian_kl, reparameterise
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

_DEFAULT_IMAGE_SCALE = 1.0 / 255.0


def _flag(name: str, value: object) -> bool:
    """A boolean option; a string such as ``"false"`` is an error, not ``True``."""
    if not isinstance(value, bool):
        raise ConfigError(f"udml: option {name} must be true or false, got {value!r}")
    return value


def _phase_start(fraction: float, max_epochs: int) -> int:
    """First epoch at or after ``fraction`` of the run (robust to float rounding: 0.7 * 10 -> 7)."""
    return math.ceil(fraction * max_epochs - 1e-9)


@METHODS.register(
    "udml",
    "noise-aware uncertainty (s) divided by modality dependency (alpha): w = g(1 / (s * alpha))",
)
class UDML(Method):
    """Unbiased dynamic fusion; see the module docstring for the equations and options."""

    wants_spatial_features = True

    def __init__(
        self,
        spec: MethodSpec,
        gamma: float = 1.0,
        beta: float = 1e-4,
        mse_weight: float = 0.1,
        momentum: float = 0.9,
        per_sample_dependency: bool = False,
        use_dependency: bool = True,
        use_estimator: bool = True,
        probabilistic: bool = True,
        detach_uncertainty: bool = True,
        clean_until: float = 0.5,
        full_weights_from: float = 0.6,
        lr_step_at: float = 0.7,
        lr_step: float = 0.1,
        max_level: int = 11,
        vector_noise_scale: float = 0.1,
        spectrogram_noise_scale: float = 1.0,
        vector_norm: str = "layer",
        seed: int | None = None,
    ) -> None:
        super().__init__(spec)
        if len(self.modalities) < 2:
            raise ConfigError(
                f"udml needs at least 2 modalities, got {len(self.modalities)}; use 'static' or "
                "'unimodal' for a single modality"
            )
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
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"udml: momentum must be in [0, 1), got {momentum}")
        if vector_norm not in ("layer", "batch"):
            raise ConfigError(f"udml: vector_norm must be 'layer' or 'batch', got {vector_norm!r}")
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.mse_weight = float(mse_weight)
        self.per_sample = _flag("per_sample_dependency", per_sample_dependency)
        self.use_dependency = _flag("use_dependency", use_dependency)
        self.use_estimator = _flag("use_estimator", use_estimator)
        self.probabilistic = _flag("probabilistic", probabilistic)
        self.detach_uncertainty = _flag("detach_uncertainty", detach_uncertainty)
        self.clean_until = float(clean_until)
        self.full_weights_from = float(full_weights_from)
        self.lr_step_at = float(lr_step_at)
        self.lr_step = float(lr_step)
        self.max_level = int(max_level)
        self.vector_noise_scale = float(vector_noise_scale)
        self.spectrogram_noise_scale = float(spectrogram_noise_scale)
        self.seed = int(spec.seed if seed is None else seed)

        dims = {m: int(spec.feature_dims[m]) for m in self.modalities}
        self.heads = nn.ModuleDict(
            {
                m: ProbabilisticHead(d, d, spatial=self._spatial(m), vector_norm=vector_norm)
                for m, d in dims.items()
            }
        )
        self.estimators = nn.ModuleDict(
            {m: NoiseEstimator(d) for m, d in dims.items()} if self.use_estimator else {}
        )
        self.fusion = build_fusion(spec.fusion, dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)
        self.unimodal = UnimodalHeads(dims, spec.num_classes)
        self.dependency = DependencyTracker(len(self.modalities), momentum)
        # Set once training reaches the full-weights phase; evaluation uses s * alpha only then,
        # so a model selected from an earlier epoch keeps the alpha-only weights it trained with.
        self.register_buffer("estimator_ready", torch.zeros((), dtype=torch.bool))
        self._epoch = 0
        self._max_epochs = 0
        self._last: dict[str, Tensor] = {}

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
        if kind == "image":
            scale = self.spec.input_scales.get(modality) or _DEFAULT_IMAGE_SCALE
            return level.pow(2) * float(scale)
        if kind == "spectrogram":
            return level * self.spectrogram_noise_scale
        return level * self.vector_noise_scale

    def inject(self, batch: Batch, levels: Mapping[str, Tensor], epoch: int = 0) -> Batch:
        """Apply noise levels ``{m: FloatTensor[B]}`` to a batch; sets ``batch.noise_level``.

        ``v = 1`` leaves the input unchanged, ``v >= max_level`` replaces it by pure noise. Noise is
        seeded per ``(seed, sample index, epoch, modality)``. Absent modalities are left alone.
        """
        from robustfusion.data.corruptions import add_gaussian_noise

        inputs = dict(batch.inputs)
        noise_level = dict(batch.noise_level)
        for j, m in enumerate(self.modalities):
            if m not in levels:
                continue
            x = batch.inputs[m]
            present = batch.present[m].to(x.device)
            v = levels[m].to(x.device, x.dtype).reshape(-1).expand(x.shape[0])
            v = torch.where(present, v, torch.ones_like(v))
            shape = (-1,) + (1,) * (x.dim() - 1)
            pure = (v >= self.max_level).view(shape)
            std = torch.where(v > 1, self.noise_std(m, v), torch.zeros_like(v))
            seeds = noise_seeds(batch.index.to(x.device), self.seed, epoch, j)
            noisy = add_gaussian_noise(torch.where(pure, torch.zeros_like(x), x), std, seeds)
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
        index = batch.index
        levels = {
            m: draw_noise_levels(index, self.seed, self._epoch, j, self.max_level)
            for j, m in enumerate(self.modalities)
        }
        return self.inject(batch, levels, epoch=self._epoch)

    # ----------------------------------------------------------------- forward
    def _head_input(self, modality: str, feature: Tensor) -> Tensor:
        """Adapt an encoder output to its head's layout (pool a map for a vector head, or view a
        vector as a 1x1 map for a map head) so that custom encoders work either way."""
        if self.heads[modality].spatial:
            return feature if feature.dim() == 4 else feature.reshape(*feature.shape[:2], 1, 1)
        return pool_map(feature)

    def _fused_logits(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor], weights: Tensor
    ) -> Tensor:
        return self.classifier(self.fusion(features, present, weights))

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        mods = self.modalities
        pooled: dict[str, Tensor] = {}
        extras: dict[str, Tensor] = {}
        sigma_hat: list[Tensor] = []
        for m in mods:
            f = self._head_input(m, features[m])
            head = self.heads[m]
            if self.probabilistic:
                mu, logvar = head(f)
                z = reparameterise(mu, logvar, self.training)
                sigma_in = pool_map(torch.exp(0.5 * logvar)).detach()
                extras[f"mu/{m}"], extras[f"logvar/{m}"] = mu, logvar
            else:
                z = head.mu(f)
                # Learned sigma proxy: the logvar branch on detached features, trained by MSE only.
                sigma_in = pool_map(torch.exp(0.5 * head.logvar(f.detach())))
            pooled[m] = pool_map(z)
            if self.use_estimator:
                sigma_hat.append(self.estimators[m](sigma_in))
                extras[f"sigma_hat/{m}"] = sigma_hat[-1]

        mask = torch.stack([present[m] for m in mods], dim=1).to(pooled[mods[0]].device)
        dtype = pooled[mods[0]].dtype
        batch = mask.shape[0]
        ones = torch.ones(batch, len(mods), dtype=dtype, device=mask.device)

        alpha = ones
        if self.use_dependency:
            need_sample = self.per_sample or self.training
            sample_alpha = (
                per_sample_dependency(
                    self._fused_logits,
                    {m: p.detach() for m, p in pooled.items()},
                    present,
                    mods,
                    2.0 * ones,
                )
                if need_sample
                else None
            )
            if self.training and sample_alpha is not None:
                self.dependency.update(sample_alpha, mask)
            if self.per_sample and sample_alpha is not None:
                alpha = sample_alpha
            else:
                alpha = self.dependency.alpha.to(dtype).expand(batch, -1)

        uncertainty = ones
        full = self.uses_full_weights()
        if self.training and full:
            self.estimator_ready.fill_(True)
        if self.use_estimator and full:
            uncertainty = torch.stack(sigma_hat, dim=1).pow(2)
            if self.detach_uncertainty:
                uncertainty = uncertainty.detach()

        inverse = mask.to(dtype) / (uncertainty * alpha).clamp_min(1e-6)
        count = mask.sum(dim=1, keepdim=True).to(dtype)
        weights = count * inverse / inverse.sum(dim=1, keepdim=True).clamp_min(1e-12)

        logits = self._fused_logits(pooled, present, 1.0 + weights)
        extras.update({"udml_weights": weights, "uncertainty": uncertainty, "dependency": alpha})
        if self.training:
            self._last = {
                "weights": weights.detach(),
                "uncertainty": uncertainty.detach(),
                "mask": mask.detach(),
            }
        return FusionOutput(
            logits=logits,
            weights=weights / count.clamp_min(1.0),
            modalities=mods,
            unimodal_logits=self.unimodal(pooled),
            extras=extras,
        )

    # ----------------------------------------------------------------- losses
    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """``ce + gamma * unimodal_ce + beta * kl + mse_weight * noise_mse`` over present samples;
        ``v = 1`` where the batch carries no noise level."""
        target = batch.target
        terms = {"ce": F.cross_entropy(output.logits, target)}
        zero = output.logits.new_zeros(())
        unimodal, kl, mse = zero, zero, zero
        for m in self.modalities:
            seen = batch.present[m].to(target.device)
            if not bool(seen.any()):
                continue
            level = batch.noise_level.get(m)
            if level is None:
                level = torch.ones(target.shape[0], device=target.device)
            level = level.to(output.logits.dtype)[seen]
            unimodal = unimodal + F.cross_entropy(output.unimodal_logits[m][seen], target[seen])
            if self.probabilistic:
                mu, logvar = output.extras[f"mu/{m}"], output.extras[f"logvar/{m}"]
                kl = kl + gaussian_kl(mu[seen], logvar[seen], level)
            if self.use_estimator:
                mse = mse + noise_level_loss(output.extras[f"sigma_hat/{m}"][seen], level)
        terms["unimodal_ce"] = self.gamma * unimodal
        if self.probabilistic:
            terms["kl"] = self.beta * kl
        if self.use_estimator:
            terms["noise_mse"] = self.mse_weight * mse
        return terms

    def logged_values(self) -> dict[str, float]:
        """Dependency ``alpha``, mean uncertainty ``s`` and mean weight ``w`` per modality."""
        values = {
            f"alpha/{m}": float(a)
            for m, a in zip(self.modalities, self.dependency.alpha, strict=True)
        }
        if self._last:
            mask = self._last["mask"].to(self._last["weights"].dtype)
            seen = mask.sum(dim=0).clamp_min(1.0)
            w = (self._last["weights"] * mask).sum(dim=0) / seen
            s = (self._last["uncertainty"] * mask).sum(dim=0) / seen
            for j, m in enumerate(self.modalities):
                values[f"weight/{m}"] = float(w[j])
                values[f"uncertainty/{m}"] = float(s[j])
        return values
