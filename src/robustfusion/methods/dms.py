"""DMS: Dynamic Modality Scheduling (arXiv 2506.12724; METHODS.md §2).

Per modality ``m`` a head (:class:`~robustfusion.modules.mc_dropout.MCDropoutHead`) projects the
encoder features into a shared space (``z_m``) and classifies them (``p_m``). Three signals judge
each modality per sample:

* confidence ``c_m = 1 − H(p_m)`` [paper] (``confidence="normalised"``: ``1 − H/log K`` [ours]);
* uncertainty ``u_m = mean_k Var_t[p_{m,k}^(t)] / 0.25`` over ``T`` Monte-Carlo dropout passes
  [paper] over the part of the network ``mc_scope`` names: ``classifier`` (the head's
  classifier only), ``head`` (the head's projector and classifier), ``encoder_top`` (the
  encoder's last block as well) or ``encoder`` (all of it: the paper's "MC dropout on the
  modality encoder");
* consistency (``consistency="agreement"``, the default [ours]): ``exp(−KL(p_m ‖ p̄_{−m}))``, how
  well modality ``m``'s prediction agrees with the mean of the others'. The paper's
  ``s_m = mean_{m'≠m} (1 + cos(z_m, z_m'))/2`` (``consistency="cosine"``) is symmetric: with
  M = 2 both modalities get the same value and it cancels in the softmax, so it cannot tell a
  corrupted modality from a clean one on audio-visual data (METHODS.md §2).

A scheduler turns them into weights ``w`` (rule: ``softmax((a·c − b·u + g·s)/τ)``; learned: an
MLP) [paper], the fused embedding ``z = Σ_m w_m z_m`` is classified, and training minimises

    CE(fused) + unimodal_weight · Σ_m CE(p_m) + λ · Σ_m sg(w_m) ‖z − z_m‖²

(the Modality Weight Consistency Loss [paper] with a stop-gradient on ``w``, applied to the ``w``
inside ``z`` as well, so this term moves the embeddings and never the scheduler).
``consistency_reduction`` says how ``‖z − z_m‖²`` runs over the ``shared_dim`` coordinates:
``sum`` (the squared norm, the paper's literal form) or ``mean`` (the same divided by
``shared_dim``, so that λ means the same at any width) [ours]; docs/dms.md, "The
weight-consistency loss costs accuracy and robustness", has why.

Decisions where the paper is silent [ours]:

* the unimodal cross-entropies train the unimodal heads, whose predictions the confidence needs;
* the signals are measurements: they are detached before the scheduler (``detach_signals``), so
  the scheduler cannot game them, and the MC passes run without autograd;
* an MC pass is one sampled network, its dropout masks shared by the samples of the batch, and
  the ``T`` passes run as one batched pass (``mc_scope=head``: without forming the ``T``
  projections, see ``modules/mc_dropout.py``). In training the heads' masks are new every step
  (global generator); in evaluation every batch meets the same ``T`` networks, drawn once from
  the counter-based source (:mod:`robustfusion.rng`, keyed on the seed and the modality), so a
  sample's signals depend neither on its batch nor on the evaluation's pass size (the encoder
  scopes' encoder dropout still comes from the global generator);
* ``encoder_top`` and ``encoder`` run the encoders' stages themselves (:meth:`DMS.encode`, with
  the encoders in evaluation mode for the MC passes so that batch norms keep their statistics);
  ``head`` is the default [ours]: METHODS.md reads the paper as MC dropout over the modality's
  encoder *and* head; the head part is the default, the encoder part the options ``encoder_top``
  and ``encoder``. Measured (docs/dms.md): a 30-epoch avdigits run took 60 s with ``head``-type
  scopes and over 8 minutes with ``encoder`` (inference 13x static; ``encoder_top`` 3.7x),
  while the four scopes give the same weights within 0.01 on mfeat and avdigits, because ``u``
  is small beside the confidence. ``classifier`` (the head's classifier only) is the cheapest;
* DMS fuses in its own shared space, so ``spec.fusion`` (``--fusion``) is ignored; ``hidden_dim``
  sets the width of the fused classifier and, by default, of the shared space;
* absent modalities get weight 0, are left out of the consistency of the others and of the
  unimodal losses;
* ``weights="uniform"`` is the uniform twin: the same model and losses, fused with uniform
  weights (no signals are computed); evaluation can swap weights (``set_weight_mode``);
* ``train_noise`` (off by default) is an extension: during training, a fraction
  ``train_noise_p`` of the samples get Gaussian noise of std ``U(0, train_noise)`` (data units) on
  one present modality drawn at random, seeded per (seed, sample index, epoch), so that a learned
  scheduler sees unreliable modalities; trained on clean data only it never does.

Segmentation (``task="segmentation"``; encoders give maps ``[B, C, h, w]`` of one size,
targets ``[B, H, W]`` with 255 unlabelled) [ours: the paper and METHODS.md have no segmentation
recipe]:

* the unimodal heads become per-pixel segmentation heads: the same :class:`MCDropoutHead`
  (projector, LayerNorm over channels, classifier) applied at every position of the map (a 1x1
  convolution), its ``[B, K, h, w]`` logits upsampled bilinearly to the target size; an MC pass
  is still one sampled network (its masks shared by every pixel of every image);
* the signals (confidence, MC-dropout uncertainty, cross-modal consistency) are computed per
  pixel at the feature resolution and averaged over each image's positions, so the weights stay
  per sample ``[B, M]`` and are broadcast over the maps when the shared embeddings are fused
  (``z = Σ_m w_m z_m`` position by position); the task's head
  (:class:`~robustfusion.modules.segmentation_head.SegmentationHead`, ``shared_dim`` wide) turns
  the fused map into ``[B, K, H, W]`` logits;
* the fused and unimodal losses are the task's per-pixel cross-entropy without unlabelled pixels
  (a modality's unimodal loss over the labelled pixels of the images where it is present); the
  weight-consistency loss stays per sample: ``‖z − z_m‖²`` over channels, averaged over positions;
* ``mc_scope`` ``encoder_top`` and ``encoder`` (which run the encoders' stages themselves) are
  refused in one line: use ``classifier`` or ``head``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, integer, number
from robustfusion.encoders.base import Stage, encoder_stages
from robustfusion.errors import ConfigError, DataError
from robustfusion.methods.base import (
    Method,
    MethodFacts,
    MethodSpec,
    output_head,
    trained_weights_option,
)
from robustfusion.modules.dms_signals import (
    CONFIDENCES,
    CONSISTENCIES,
    mc_dropout_uncertainty,
    mean_over_positions,
    prediction_agreement,
    semantic_consistency,
)
from robustfusion.modules.mc_dropout import (
    HeadMasks,
    MCDropoutHead,
    StackedHeads,
    dropped_indices,
)
from robustfusion.modules.noise_levels import sample_hash
from robustfusion.modules.scheduler import build_scheduler
from robustfusion.registry import METHODS
from robustfusion.rng import stream
from robustfusion.types import Batch, FusionOutput

#: ``sample_hash`` returns 31-bit integers.
_HASH_RANGE = 1 << 31
#: Where the MC-dropout passes run, from the least to the most of the network: the head's
#: classifier, the head, also the encoder's top stage, the whole encoder (docs/dms.md: costs).
MC_SCOPES = ("classifier", "head", "encoder_top", "encoder")
#: Scopes whose passes start from the encoders' outputs (no ``encode`` step needed).
_HEAD_SCOPES = ("classifier", "head")
#: How the weight-consistency loss runs over the shared coordinates.
CONSISTENCY_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class _Encoded:
    """What :meth:`DMS.encode` hands to the next forward: the features it returned and the
    features of the ``T`` stochastic encoder passes (``[T, B, D]`` per modality)."""

    features: dict[str, Tensor]
    passes: dict[str, Tensor]


@contextmanager
def _evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in evaluation mode inside the block (batch norms keep their statistics)."""
    was_training = module.training
    module.train(False)
    try:
        yield
    finally:
        module.train(was_training)


@METHODS.register(
    "dms",
    "dynamic modality scheduling: per-sample weights from confidence, MC-dropout uncertainty "
    "and cross-modal consistency (scheduler=rule|learned)",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class DMS(Method):
    """Dynamic Modality Scheduling; see the module docstring for the equations.

    Options (docs/dms.md): ``scheduler`` ("rule" | "learned"), ``T`` MC samples (10),
    ``mc_dropout`` (0.1), ``mc_scope`` ("classifier" | "head" | "encoder_top" | "encoder"),
    ``confidence``
    ("entropy" | "normalised"), ``consistency`` ("cosine" | "agreement"), ``a``, ``b``, ``g``,
    ``tau`` (1), ``consistency_weight`` λ (0.1), ``consistency_reduction`` ("sum" | "mean"),
    ``unimodal_weight`` (1), ``shared_dim`` (default ``hidden_dim``), ``scheduler_hidden`` (64), ``detach_signals`` (True), ``weights``
    ("learned" | "uniform": the uniform twin), ``train_noise`` (0: off), ``train_noise_p`` (0.5),
    ``seed`` (seeds the training noise; default: the run's ``--seed``).
    """

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "T": integer(2, 1000),
        "mc_dropout": number(0.0, 1.0, open_minimum=True, open_maximum=True),
        "a": number(0.0, 1e3),
        "b": number(0.0, 1e3),
        "g": number(0.0, 1e3),
        "tau": number(0.0, 1e3, open_minimum=True),
        "consistency_weight": number(0.0, 1e3),
        "unimodal_weight": number(0.0, 1e3),
        "shared_dim": integer(1, 65536),
        "scheduler_hidden": integer(1, 65536),
        "train_noise": number(0.0, 1e3),
        "train_noise_p": number(0.0, 1.0),
        "seed": integer(0, 2**32 - 1),
    }

    has_dynamic_weights = True

    def __init__(
        self,
        spec: MethodSpec,
        scheduler: str = "rule",
        T: int = 10,  # the paper's name, used on the command line: dms.T=10
        mc_dropout: float = 0.1,
        mc_scope: str = "head",
        confidence: str = "entropy",
        consistency: str = "agreement",
        a: float = 1.0,
        b: float = 1.0,
        g: float = 1.0,
        tau: float = 1.0,
        consistency_weight: float = 0.1,
        consistency_reduction: str = "sum",
        unimodal_weight: float = 1.0,
        shared_dim: int | None = None,
        scheduler_hidden: int = 64,
        detach_signals: bool = True,
        weights: str = "learned",
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
        if mc_scope not in MC_SCOPES:
            raise ConfigError(
                f"dms: unknown mc_scope {mc_scope!r}; use dms.mc_scope={'|'.join(MC_SCOPES)}"
            )
        if confidence not in CONFIDENCES:
            raise ConfigError(
                f"dms: unknown confidence {confidence!r}; use dms.confidence=entropy or normalised"
            )
        if consistency not in CONSISTENCIES:
            raise ConfigError(
                f"dms: unknown consistency {consistency!r}; use dms.consistency=cosine or agreement"
            )
        if float(tau) <= 0.0:
            raise ConfigError(f"dms: tau={tau} must be > 0, e.g. dms.tau=1")
        if consistency_reduction not in CONSISTENCY_REDUCTIONS:
            raise ConfigError(
                f"dms: unknown consistency_reduction {consistency_reduction!r}; use "
                "dms.consistency_reduction=sum or mean"
            )
        if consistency_weight < 0 or unimodal_weight < 0:
            raise ConfigError("dms: consistency_weight and unimodal_weight must be >= 0")
        if float(train_noise) < 0 or not 0.0 <= float(train_noise_p) <= 1.0:
            raise ConfigError("dms: train_noise must be >= 0 and train_noise_p in [0, 1]")
        self.maps = self.task.feature_kind == "map"
        if self.maps and mc_scope not in _HEAD_SCOPES:
            raise ConfigError(
                f"dms: mc_scope={mc_scope} is not defined for segmentation (it runs the encoders' "
                "stages on vectors); use dms.mc_scope=classifier or head"
            )
        self.trained_weights = trained_weights_option("dms", weights)
        self.train_noise = float(train_noise)
        self.train_noise_p = float(train_noise_p)
        self.seed = int(spec.seed if seed is None else seed)
        self._epoch = 0
        self.scheduler_kind = scheduler
        self.samples = int(T)
        self.mc_dropout = float(mc_dropout)
        self.mc_scope = mc_scope
        self.confidence_kind = confidence
        self.consistency_kind = consistency
        self.consistency_weight = float(consistency_weight)
        self.consistency_reduction = consistency_reduction
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
        # modalities whose heads have equal shapes run stacked, as one batched pass
        by_dim: dict[int, list[int]] = {}
        for i, m in enumerate(self.modalities):
            by_dim.setdefault(int(spec.feature_dims[m]), []).append(i)
        self._groups: tuple[tuple[int, ...], ...] = tuple(tuple(v) for v in by_dim.values())
        self.scheduler = build_scheduler(
            scheduler, len(self.modalities), a=a, b=b, g=g, tau=tau, hidden=scheduler_hidden
        )
        self.classifier: nn.Module
        if self.maps:  # the task's head on the fused shared map: [B, K, H, W]
            self.classifier = output_head(spec, self.shared_dim)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(self.shared_dim, spec.hidden_dim),
                nn.ReLU(),
                nn.Linear(spec.hidden_dim, spec.num_classes),
            )
        self.target_shape = tuple(int(n) for n in spec.target_shape)
        self._logged: dict[str, Tensor] = {}
        self._encoded: _Encoded | None = None
        # evaluation masks by (group, device, T, dropout, seed), with their dropped indices
        self._evaluation_masks: dict[
            tuple[object, ...], tuple[HeadMasks, tuple[Tensor, Tensor]]
        ] = {}

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

    # ----------------------------------------------------------------- encoding
    def encode(
        self, encoders: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Features of every modality; with ``mc_scope`` ``encoder_top``/``encoder`` also the
        ``T`` stochastic encoder passes, kept for the next :meth:`forward` on these features.

        ``mc_scope=encoder_top`` runs each encoder's trunk once, its top on the trunk output
        (the features) and ``T`` times on the dropped-out trunk output; ``encoder`` runs the
        encoder and ``T`` passes of all its stages with dropout before each. A model calls this
        in place of ``{m: encoders[m](inputs[m])}``.
        """
        if self.mc_scope in _HEAD_SCOPES:
            return {m: encoders[m](inputs[m]) for m in self.modalities}
        want_passes = self.effective_weight_mode() == "learned"
        features: dict[str, Tensor] = {}
        passes: dict[str, Tensor] = {}
        for m in self.modalities:
            encoder = encoders[m]
            stages = encoder_stages(encoder)
            if self.mc_scope == "encoder_top":
                hidden = inputs[m]
                for stage in stages[:-1]:
                    hidden = stage(hidden)
                features[m] = stages[-1](hidden)
                start, mc_stages = hidden, stages[-1:]
            else:
                features[m] = encoder(inputs[m])
                start, mc_stages = inputs[m], stages
            if want_passes:
                with _evaluation_mode(encoder), self._signal_grad():
                    passes[m] = self._stochastic_passes(mc_stages, start)
        self._encoded = _Encoded(features, passes)
        return features

    def _stochastic_passes(self, stages: Sequence[Stage], start: Tensor) -> Tensor:
        """``T`` passes of ``stages`` with dropout (one mask per pass, shared by the batch)
        before each stage: ``[T, B, D]``."""
        samples, batch = self.samples, start.shape[0]
        keep = 1.0 - self.mc_dropout
        x = start.unsqueeze(0)  # [1, B, ...]: the first mask broadcasts it to T passes
        for stage in stages:
            mask = torch.rand((samples, 1, *x.shape[2:]), device=x.device) < keep
            dropped = x * (mask.to(x.dtype) / keep)
            x = stage(dropped.reshape(samples * batch, *dropped.shape[2:]))
            x = x.view(samples, batch, *x.shape[1:])
        return x

    def _signal_grad(self) -> torch.autograd.grad_mode.set_grad_enabled:
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_signals)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        mc_masks: Mapping[str, HeadMasks] | None = None,
        mc_features: Mapping[str, Tensor] | None = None,
    ) -> FusionOutput:
        """Fuse ``features`` (``{m: [B, D_m]}``).

        ``mc_masks`` optionally fixes the heads' MC dropout masks (``{m: ([T, D_m], [T, S])}``);
        ``mc_features`` gives the ``T`` stochastic encoder passes (``{m: [T, B, D_m]}``) of
        ``mc_scope`` ``encoder_top``/``encoder``, which :meth:`encode` otherwise provides.
        """
        mask = torch.stack([present[m].bool() for m in self.modalities], dim=1)
        if not bool(mask.any(dim=1).all()):
            raise DataError(
                "a sample has every modality missing: drop such samples or keep at least one modality"
            )
        if self.maps:
            return self._forward_maps(features, present, mask, mc_masks)
        for m in self.modalities:
            if features[m].dim() != 2:
                raise DataError(
                    f"dms needs vector features [B, D] for {m!r}, got {tuple(features[m].shape)}"
                )
        encoded, self._encoded = self._encoded, None
        stacks = [
            StackedHeads.of([self.heads[self.modalities[i]] for i in group])  # type: ignore[misc]
            for group in self._groups
        ]
        inputs = [torch.stack([features[self.modalities[i]] for i in g]) for g in self._groups]
        # x Wᵀ of the projectors, shared by the heads and their MC passes (without dropout)
        projections = None
        if not self.training:
            projections = [s.projection(x) for s, x in zip(stacks, inputs, strict=True)]
        z_stack, logits = self._heads(stacks, inputs, projections)  # [B, M, S], [B, M, K]
        zero = torch.zeros((), dtype=z_stack.dtype, device=z_stack.device)
        extras: dict[str, Tensor] = {"shared": z_stack, "present": mask}
        if self.effective_weight_mode() == "learned":
            passes = self._encoder_passes(features, mc_features, encoded)
            confidence, uncertainty, consistency = self._signals(
                stacks, inputs, projections, z_stack, logits, mask, mc_masks, passes
            )
            learned = self.scheduler(confidence, uncertainty, consistency, mask)
            extras.update(confidence=confidence, uncertainty=uncertainty, consistency=consistency)
            if self.training:
                self._remember(learned, confidence, uncertainty, consistency, mask)
        else:  # uniform twin or an evaluation swap: no signals needed
            learned = mask.to(z_stack.dtype) / mask.sum(dim=1, keepdim=True).to(z_stack.dtype)
        weights = self.swap_weights(learned, present)
        fused = (weights.unsqueeze(-1) * torch.where(mask.unsqueeze(-1), z_stack, zero)).sum(dim=1)
        extras["fused"] = fused
        return FusionOutput(
            logits=self.classifier(fused),
            weights=weights,
            modalities=self.modalities,
            unimodal_logits={m: logits[:, i] for i, m in enumerate(self.modalities)},
            extras=extras,
        )

    def _signals(
        self,
        stacks: Sequence[StackedHeads],
        inputs: Sequence[Tensor],
        projections: Sequence[Tensor] | None,
        z_stack: Tensor,
        logits: Tensor,
        mask: Tensor,
        mc_masks: Mapping[str, HeadMasks] | None,
        passes: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(confidence, uncertainty, consistency)`` ``[N, M]`` of the rows of the heads (``N``:
        samples, or pixels on maps); absent rows 0. ``passes``: the encoder passes of
        ``mc_scope`` ``encoder_top``/``encoder`` (vectors only)."""
        zero = torch.zeros((), dtype=z_stack.dtype, device=z_stack.device)
        with self._signal_grad():
            if self.mc_scope == "classifier":
                uncertainty = self._classifier_uncertainty(
                    stacks, inputs, None if self.training else z_stack, mc_masks
                )
            else:
                uncertainty = self._uncertainty(stacks, inputs, projections, passes, mc_masks)
        signal_logits = logits.detach() if self.detach_signals else logits
        confidence = torch.where(mask, CONFIDENCES[self.confidence_kind](signal_logits), zero)
        uncertainty = torch.where(mask, uncertainty, zero)
        if self.consistency_kind == "cosine":
            signal_z = z_stack.detach() if self.detach_signals else z_stack
            consistency = semantic_consistency(signal_z, mask)
        else:
            consistency = prediction_agreement(signal_logits, mask)
        return confidence, uncertainty, consistency

    def _forward_maps(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        mask: Tensor,
        mc_masks: Mapping[str, HeadMasks] | None,
    ) -> FusionOutput:
        """Segmentation: the heads at every position of ``{m: [B, D_m, h, w]}``, the signals per
        pixel averaged over each image, per-sample weights ``[B, M]`` broadcast over the maps."""
        self._encoded = None
        size = None
        for m in self.modalities:
            shape = tuple(features[m].shape)
            if features[m].dim() != 4:
                raise DataError(
                    f"dms on segmentation needs feature maps [B, C, h, w] for {m!r}, got {shape}"
                )
            if size is not None and shape[2:] != size:
                raise DataError(
                    f"dms fuses maps position by position: {m!r} is {shape[2:]}, another {size}"
                )
            size = shape[2:]
        assert size is not None
        batch, positions = mask.shape[0], size[0] * size[1]
        # every position of every image is a row of the heads: [B·P, D_m], images in order
        rows = {
            m: features[m].flatten(2).transpose(1, 2).reshape(batch * positions, -1)
            for m in self.modalities
        }
        pixel_mask = mask.repeat_interleave(positions, dim=0)  # [B·P, M]
        stacks = [
            StackedHeads.of([self.heads[self.modalities[i]] for i in group])  # type: ignore[misc]
            for group in self._groups
        ]
        inputs = [torch.stack([rows[self.modalities[i]] for i in g]) for g in self._groups]
        projections = None
        if not self.training:
            projections = [s.projection(x) for s, x in zip(stacks, inputs, strict=True)]
        z_rows, logit_rows = self._heads(stacks, inputs, projections)  # [B·P, M, S], [B·P, M, K]
        zero = torch.zeros((), dtype=z_rows.dtype, device=z_rows.device)

        # [B, M, C, h, w] from rows [B·P, M, C]
        def as_maps(values: Tensor) -> Tensor:
            grid = values.view(batch, positions, *values.shape[1:]).permute(0, 2, 3, 1)
            return grid.reshape(*grid.shape[:3], *size)

        z_maps = as_maps(z_rows)
        extras: dict[str, Tensor] = {"shared": z_maps, "present": mask}
        if self.effective_weight_mode() == "learned":
            signals = self._signals(
                stacks, inputs, projections, z_rows, logit_rows, pixel_mask, mc_masks
            )
            confidence, uncertainty, consistency = (mean_over_positions(v, batch) for v in signals)
            learned = self.scheduler(confidence, uncertainty, consistency, mask)
            extras.update(confidence=confidence, uncertainty=uncertainty, consistency=consistency)
            if self.training:
                self._remember(learned, confidence, uncertainty, consistency, mask)
        else:
            learned = mask.to(z_rows.dtype) / mask.sum(dim=1, keepdim=True).to(z_rows.dtype)
        weights = self.swap_weights(learned, present)
        seen = mask.view(*mask.shape, 1, 1, 1)
        fused = (weights.view(*weights.shape, 1, 1, 1) * torch.where(seen, z_maps, zero)).sum(dim=1)
        extras["fused"] = fused
        unimodal = as_maps(logit_rows)  # [B, M, K, h, w]
        if tuple(size) != self.target_shape:
            unimodal = F.interpolate(
                unimodal.flatten(0, 1), size=self.target_shape, mode="bilinear", align_corners=False
            ).view(batch, len(self.modalities), -1, *self.target_shape)
        return FusionOutput(
            logits=self.classifier(fused),
            weights=weights,
            modalities=self.modalities,
            unimodal_logits={m: unimodal[:, i] for i, m in enumerate(self.modalities)},
            extras=extras,
        )

    def _heads(
        self,
        stacks: Sequence[StackedHeads],
        inputs: Sequence[Tensor],
        projections: Sequence[Tensor] | None,
    ) -> tuple[Tensor, Tensor]:
        """``(z [B, M, S], logits [B, M, K])`` of every head, one batched pass per group."""
        outputs = [
            stacked.forward(x, self.training, None if projections is None else projections[i])
            for i, (stacked, x) in enumerate(zip(stacks, inputs, strict=True))
        ]
        z = self._in_order([out[0] for out in outputs])
        logits = self._in_order([out[1] for out in outputs])
        return z.transpose(0, 1), logits.transpose(0, 1)

    def _in_order(self, values: list[Tensor]) -> Tensor:
        """Per-group values ``[G, ...]`` joined into ``[M, ...]`` in modality order."""
        joined = values[0] if len(values) == 1 else torch.cat(values)
        order = [i for group in self._groups for i in group]
        if order == sorted(order):
            return joined
        position = sorted(range(len(order)), key=order.__getitem__)
        return joined.index_select(0, torch.tensor(position, device=joined.device))

    def _encoder_passes(
        self,
        features: Mapping[str, Tensor],
        given: Mapping[str, Tensor] | None,
        encoded: _Encoded | None,
    ) -> Mapping[str, Tensor] | None:
        """The stochastic encoder passes of ``encoder_top``/``encoder``; None for the others."""
        if self.mc_scope in _HEAD_SCOPES:
            return None
        if given is not None:
            return given
        if encoded is not None and all(
            encoded.features.get(m) is features[m] and m in encoded.passes for m in self.modalities
        ):
            return encoded.passes
        raise ConfigError(
            f"dms.mc_scope={self.mc_scope} runs the encoders itself: build the features with "
            "dms.encode(encoders, inputs), or use dms.mc_scope=classifier or head"
        )

    def _classifier_uncertainty(
        self,
        stacks: Sequence[StackedHeads],
        inputs: Sequence[Tensor],
        z_stack: Tensor | None,
        mc_masks: Mapping[str, HeadMasks] | None,
    ) -> Tensor:
        """MC-dropout uncertainty ``[B, M]`` of ``mc_scope=classifier``: ``T`` passes of the
        classifiers on the shared embeddings (without the training dropout: recomputed in
        training, ``z_stack`` otherwise)."""
        columns: list[Tensor] = []
        for i, (group, stacked) in enumerate(zip(self._groups, stacks, strict=True)):
            if z_stack is None:
                z = stacked.forward(inputs[i])[0]
            else:
                z = z_stack[:, list(group)].transpose(0, 1)
            if mc_masks is None:
                keep = self._pass_masks(stacked, group, z.device)[0][1]
            else:
                keep = torch.stack([mc_masks[self.modalities[j]][1] for j in group]).to(z.device)
            mc_logits = stacked.mc_classifier_logits(z, keep)  # [G, T, B, K]
            columns.append(mc_dropout_uncertainty(mc_logits.transpose(0, 1)))
        return self._in_order(columns).transpose(0, 1)

    def _pass_masks(
        self, stacked: StackedHeads, group: tuple[int, ...], device: torch.device
    ) -> tuple[HeadMasks, tuple[Tensor, Tensor] | None]:
        """Keep-masks ``([G, T, D], [G, T, S])`` of the heads' ``T`` passes for one group, with
        their :func:`~robustfusion.modules.mc_dropout.dropped_indices` when they are reused.

        Training: new networks every step, from the global generator. Evaluation: the same ``T``
        networks for every batch, from the counter-based source keyed on ``(seed, modality)``
        [ours], so that a sample's uncertainty depends neither on the other samples of its batch
        nor on how an evaluation splits the data into passes; drawn once and kept.
        """
        if self.training:
            return stacked.sample_masks(self.samples, device=device), None
        key = (group, str(device), self.samples, self.mc_dropout, self.seed)
        if key not in self._evaluation_masks:
            passes, keep = torch.arange(self.samples), 1.0 - self.mc_dropout

            def draw(part: str, size: int) -> Tensor:
                """``[G, T, size]``: each modality's keep-mask, a function of (seed, modality)."""
                masks = [
                    stream(self.seed, "dms-mc", part, self.modalities[i]).bernoulli(
                        passes, keep, size
                    )
                    for i in group
                ]
                return torch.stack(masks).to(device)

            in_dim = self.heads[self.modalities[group[0]]].in_dim
            masks = (draw("input", in_dim), draw("shared", self.shared_dim))
            self._evaluation_masks[key] = (masks, dropped_indices(masks))
        return self._evaluation_masks[key]

    def _uncertainty(
        self,
        stacks: Sequence[StackedHeads],
        inputs: Sequence[Tensor],
        projections: Sequence[Tensor] | None,
        passes: Mapping[str, Tensor] | None,
        mc_masks: Mapping[str, HeadMasks] | None,
    ) -> Tensor:
        """MC-dropout uncertainty ``[B, M]`` from ``T`` passes of the heads (over the features,
        or over the stochastic encoder passes when given)."""
        columns: list[Tensor] = []
        for i, (group, stacked) in enumerate(zip(self._groups, stacks, strict=True)):
            names = [self.modalities[j] for j in group]
            x = inputs[i] if passes is None else torch.stack([passes[m] for m in names])
            dropped = None
            if mc_masks is None:
                masks, dropped = self._pass_masks(stacked, group, x.device)
            else:
                masks = (
                    torch.stack([mc_masks[m][0] for m in names]).to(x.device),
                    torch.stack([mc_masks[m][1] for m in names]).to(x.device),
                )
            projection = None if projections is None or passes is not None else projections[i]
            mc_logits = stacked.mc_logits(x, masks, projection, dropped)  # [G, T, B, K]
            # [T, G, K, B]: for the shared-input passes this is their memory layout
            passes_first = mc_logits.transpose(0, 1).transpose(-1, -2)
            columns.append(mc_dropout_uncertainty(passes_first, dim=-2))  # [G, B]
        return self._in_order(columns).transpose(0, 1)

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """Fused CE, the unimodal CEs (present samples only) and the weight-consistency loss."""
        if self.maps:
            return self._map_losses(output, batch)
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
        distance = self._squared_distance((fused - shared).pow(2), dim=-1)
        consistency = (weights * distance).sum(dim=1).mean()
        return {
            "ce": F.cross_entropy(output.logits, target),
            "unimodal_ce": self.unimodal_weight * unimodal,
            "weight_consistency": self.consistency_weight * consistency,
        }

    def _squared_distance(self, squares: Tensor, dim: int) -> Tensor:
        """``‖z − z_m‖²`` from the squared differences: their sum over the shared coordinates
        (``consistency_reduction="sum"``) or their mean (``"mean"``)."""
        if self.consistency_reduction == "mean":
            return squares.mean(dim)
        return squares.sum(dim)

    def _map_losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """Segmentation: the task's per-pixel losses (a modality's over the labelled pixels of the
        images where it is present) and the per-sample weight-consistency loss, ``‖z − z_m‖²``
        over channels averaged over positions."""
        target = batch.target
        mask = output.extras["present"]
        ignore = self.task.ignore_index
        assert ignore is not None
        unimodal = output.logits.new_zeros(())
        for i, m in enumerate(self.modalities):
            seen = mask[:, i].to(target.device).view(-1, *([1] * (target.dim() - 1)))
            kept = torch.where(seen, target, torch.full_like(target, ignore))
            unimodal = unimodal + self.task.loss(output.unimodal_logits[m], kept)
        weights = output.weights.detach().view(*mask.shape, 1, 1, 1)
        shared = output.extras["shared"]
        shared = shared * mask.view(*mask.shape, 1, 1, 1).to(shared.dtype)
        fused = (weights * shared).sum(dim=1, keepdim=True)
        distance = self._squared_distance((fused - shared).pow(2), dim=2).flatten(2).mean(-1)
        consistency = (output.weights.detach() * distance).sum(dim=1).mean()
        return {
            "ce": self.task.loss(output.logits, target),
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
