"""DMS: Dynamic Modality Scheduling (arXiv 2506.12724; METHODS.md §2).

Per modality ``m`` a head (:class:`~robustfusion.modules.mc_dropout.MCDropoutHead`) projects the
encoder features into a shared space (``z_m``) and classifies them (``p_m``). Three signals judge
each modality per sample: confidence ``c_m = 1 − H(p_m)/log K``, MC-dropout uncertainty ``u_m``
from ``T`` stochastic passes of the head run as one batched pass, and semantic consistency
``s_m = mean_{m'≠m} (1 + cos(z_m, z_m'))/2``. A scheduler turns them into weights ``w`` (rule:
``softmax((a·c − b·u + g·s)/τ)``; learned: an MLP), the fused embedding ``z = Σ_m w_m z_m`` is
classified, and training minimises

    CE(fused) + unimodal_weight · Σ_m CE(p_m) + λ · Σ_m sg(w_m) ‖z − z_m‖²

(the Modality Weight Consistency Loss with a stop-gradient on ``w``, applied to the ``w`` inside
``z`` as well, so this term moves the embeddings and never the scheduler).

Decisions where the paper is silent [ours]:

* the unimodal cross-entropies train the unimodal heads, whose predictions the confidence needs;
* the signals are measurements: they are detached before the scheduler (``detach_signals``), so
  the scheduler cannot game them, and the MC pass runs without autograd;
* DMS fuses in its own shared space, so ``spec.fusion`` (``--fusion``) is ignored; ``hidden_dim``
  sets the width of the fused classifier and, by default, of the shared space;
* absent modalities get weight 0, are left out of the consistency of the others and of the
  unimodal losses;
* ``train_noise`` (off by default) is an extension: during training, a fraction
  ``train_noise_p`` of the samples get Gaussian noise of std ``U(0, train_noise)`` (data units) on
  one present modality drawn at random, seeded per (seed, sample index, epoch), so that a learned
  scheduler sees unreliable modalities; trained on clean data only it never does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError, DataError
from robustfusion.methods.base import Method, MethodSpec
from robustfusion.modules.dms_signals import (
    mc_dropout_uncertainty,
    normalised_entropy_confidence,
    semantic_consistency,
)
from robustfusion.modules.mc_dropout import HeadMasks, MCDropoutHead
from robustfusion.modules.noise_levels import sample_hash
from robustfusion.modules.scheduler import build_scheduler
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: ``sample_hash`` returns 31-bit integers.
_HASH_RANGE = 1 << 31


@METHODS.register(
    "dms",
    "dynamic modality scheduling: per-sample weights from confidence, MC-dropout uncertainty "
    "and cross-modal consistency (scheduler=rule|learned)",
)
class DMS(Method):
    """Dynamic Modality Scheduling; see the module docstring for the equations.

    Options: ``scheduler`` ("rule" | "learned"), ``T`` MC samples (10), ``mc_dropout`` (0.1),
    ``a``, ``b``, ``g``, ``tau`` (1), ``consistency_weight`` λ (0.1), ``unimodal_weight`` (1),
    ``shared_dim`` (default ``hidden_dim``), ``scheduler_hidden`` (64), ``detach_signals`` (True),
    ``train_noise`` (0: off), ``train_noise_p`` (0.5), ``seed`` (seeds the training noise; default: the run's ``--seed``).
    """

    def __init__(
        self,
        spec: MethodSpec,
        scheduler: str = "rule",
        T: int = 10,  # the paper's name, used on the command line: dms.T=10
        mc_dropout: float = 0.1,
        a: float = 1.0,
        b: float = 1.0,
        g: float = 1.0,
        tau: float = 1.0,
        consistency_weight: float = 0.1,
        unimodal_weight: float = 1.0,
        shared_dim: int | None = None,
        scheduler_hidden: int = 64,
        detach_signals: bool = True,
        train_noise: float = 0.0,
        train_noise_p: float = 0.5,
        seed: int | None = None,
    ) -> None:
        super().__init__(spec)
        if scheduler not in ("rule", "learned"):
            raise ConfigError(
                f"dms: unknown scheduler {scheduler!r}; use dms.scheduler=rule or learned"
            )
        if int(T) < 2:
            raise ConfigError(
                f"dms: T={T} MC samples cannot estimate a variance; use dms.T=2 or more"
            )
        if not 0.0 < float(mc_dropout) < 1.0:
            raise ConfigError(
                f"dms: mc_dropout={mc_dropout} must lie in (0, 1), e.g. dms.mc_dropout=0.1"
            )
        if float(tau) <= 0.0:
            raise ConfigError(f"dms: tau={tau} must be > 0, e.g. dms.tau=1")
        if consistency_weight < 0 or unimodal_weight < 0:
            raise ConfigError("dms: consistency_weight and unimodal_weight must be >= 0")
        if float(train_noise) < 0 or not 0.0 <= float(train_noise_p) <= 1.0:
            raise ConfigError("dms: train_noise must be >= 0 and train_noise_p in [0, 1]")
        self.train_noise = float(train_noise)
        self.train_noise_p = float(train_noise_p)
        self.seed = int(spec.seed if seed is None else seed)
        self._epoch = 0
        self.scheduler_kind = scheduler
        self.samples = int(T)
        self.consistency_weight = float(consistency_weight)
        self.unimodal_weight = float(unimodal_weight)
        self.detach_signals = bool(detach_signals)
        self.shared_dim = int(shared_dim or spec.hidden_dim)
        self.heads = nn.ModuleDict(
            {
                m: MCDropoutHead(
                    spec.feature_dims[m], self.shared_dim, spec.num_classes, float(mc_dropout)
                )
                for m in self.modalities
            }
        )
        self.scheduler = build_scheduler(
            scheduler, len(self.modalities), a=a, b=b, g=g, tau=tau, hidden=scheduler_hidden
        )
        self.classifier = nn.Sequential(
            nn.Linear(self.shared_dim, spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.num_classes),
        )
        self._logged: dict[str, Tensor] = {}

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self._epoch = int(epoch)

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        """Training with ``train_noise > 0``: noise on one random present modality per chosen sample."""
        if not training or self.train_noise <= 0.0 or self.train_noise_p <= 0.0:
            return batch
        from robustfusion.data.corruptions import add_gaussian_noise

        index = batch.index.detach().cpu().long()
        draw = sample_hash(index, self.seed, self._epoch, 0xD35).double() / float(_HASH_RANGE)
        chosen = draw < self.train_noise_p
        which = sample_hash(index, self.seed, self._epoch, 0x3C1)
        scale = sample_hash(index, self.seed, self._epoch, 0x5CA).double() / float(_HASH_RANGE)
        mask = torch.stack([batch.present[m].detach().cpu().bool() for m in self.modalities], 1)
        # the k-th present modality of each sample, k uniform over its present modalities
        rank = which % mask.sum(dim=1).clamp_min(1)
        target = (mask.long().cumsum(dim=1) - 1 == rank.unsqueeze(1)) & mask
        inputs = dict(batch.inputs)
        for j, m in enumerate(self.modalities):
            rows = chosen & target[:, j]
            if not bool(rows.any()):
                continue
            x = batch.inputs[m]
            std = torch.where(rows, self.train_noise * scale, torch.zeros_like(scale))
            seeds = sample_hash(index, self.seed, self._epoch, 0x401CE, j)
            inputs[m] = add_gaussian_noise(x, std.to(x.device, torch.float32), seeds)
        return batch.replace(inputs=inputs)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        mc_masks: Mapping[str, HeadMasks] | None = None,
    ) -> FusionOutput:
        """Fuse ``features`` (``{m: [B, D_m]}``); ``mc_masks`` optionally fixes the MC dropout masks."""
        mask = torch.stack([present[m].bool() for m in self.modalities], dim=1)
        if not bool(mask.any(dim=1).all()):
            raise DataError(
                "a sample has every modality missing: drop such samples or keep at least one modality"
            )
        embeddings, logits, mc_logits = [], [], []
        for m in self.modalities:
            feature = features[m]
            if feature.dim() != 2:
                raise DataError(
                    f"dms needs vector features [B, D] for {m!r}, got {tuple(feature.shape)}"
                )
            z, unimodal = self.heads[m](feature)
            embeddings.append(z)
            logits.append(unimodal)
            masks = None if mc_masks is None else mc_masks[m]
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_signals):
                mc_logits.append(self.heads[m].mc_forward(feature, self.samples, masks)[1])
        z_stack = torch.stack(embeddings, dim=1)  # [B, M, S]
        zero = torch.zeros((), dtype=z_stack.dtype, device=z_stack.device)
        signal_z = z_stack.detach() if self.detach_signals else z_stack
        confidence = torch.stack(
            [
                normalised_entropy_confidence(x.detach() if self.detach_signals else x)
                for x in logits
            ],
            dim=1,
        )
        uncertainty = torch.stack([mc_dropout_uncertainty(x) for x in mc_logits], dim=1)
        confidence = torch.where(mask, confidence, zero)
        uncertainty = torch.where(mask, uncertainty, zero)
        consistency = semantic_consistency(signal_z, mask)
        weights = self.scheduler(confidence, uncertainty, consistency, mask)
        fused = (weights.unsqueeze(-1) * torch.where(mask.unsqueeze(-1), z_stack, zero)).sum(dim=1)
        if self.training:
            self._remember(weights, confidence, uncertainty, consistency, mask)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=weights,
            modalities=self.modalities,
            unimodal_logits=dict(zip(self.modalities, logits, strict=True)),
            extras={
                "confidence": confidence,
                "uncertainty": uncertainty,
                "consistency": consistency,
                "shared": z_stack,
                "fused": fused,
                "present": mask,
            },
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """Fused CE, the unimodal CEs (present samples only) and the weight-consistency loss."""
        target = batch.target
        mask = output.extras["present"]
        unimodal = output.logits.new_zeros(())
        for i, m in enumerate(self.modalities):
            seen = mask[:, i].to(output.logits.dtype)
            per_sample = F.cross_entropy(output.unimodal_logits[m], target, reduction="none")
            unimodal = unimodal + (per_sample * seen).sum() / seen.sum().clamp_min(1.0)
        # stop-gradient on w everywhere in this term, also inside z = sum_m w_m z_m: the loss pulls
        # the embeddings together and never moves the scheduler [ours]
        weights = output.weights.detach()
        shared = output.extras["shared"] * mask.unsqueeze(-1).to(output.extras["shared"].dtype)
        fused = (weights.unsqueeze(-1) * shared).sum(dim=1, keepdim=True)
        distance = (fused - shared).pow(2).sum(-1)
        consistency = (weights * distance).sum(dim=1).mean()
        return {
            "ce": F.cross_entropy(output.logits, target),
            "unimodal_ce": self.unimodal_weight * unimodal,
            "weight_consistency": self.consistency_weight * consistency,
        }

    def logged_values(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._logged.items()}

    @torch.no_grad()
    def _remember(
        self,
        weights: Tensor,
        confidence: Tensor,
        uncertainty: Tensor,
        consistency: Tensor,
        mask: Tensor,
    ) -> None:
        """Keep the batch means of the weights and signals (present samples) for logging."""
        seen = mask.to(weights.dtype)
        count = seen.sum(dim=0).clamp_min(1.0)
        for name, value in (
            ("w", weights),
            ("c", confidence),
            ("u", uncertainty),
            ("s", consistency),
        ):
            means = (value * seen).sum(dim=0) / count
            for i, m in enumerate(self.modalities):
                self._logged[f"dms_{name}_{m}"] = means[i]
