"""UDML's modality dependency ``alpha`` (METHODS.md §3, [code] ``main_auxi_weight_udml.py``).

``alpha_m`` is the absolute logits of the *shared* fusion head with every other modality removed
(modality dropout through the fusion's presence mask; the authors zero the other modality's
features), summed over classes and averaged over the batch: the authors'
``calculate_a = mean_batch(|out_a|).sum()``. :func:`solo_logits` computes those single-modality
logits (with the fused logits in the same batched call, so that a method that trains on them gets
its dependency for free); :func:`per_sample_dependency` reduces them without gradient.

The global ``alpha`` lives in :class:`DependencyTracker`, a registered buffer (saved in
checkpoints, used at evaluation) all-reduced across processes under DDP. Its momentum 0 keeps the
last batch's value, as the authors do (they store ``calculate_a`` and use it at the next step); a
positive momentum keeps an exponential moving average [ours].

Segmentation [ours]: the head's logits are maps ``[B, C, H, W]``; a sample's dependency is
``sum_c |logits|`` averaged over its pixels (every pixel: the measurement reads no target, so
evaluation takes it the same way), still one value per sample and modality. A head with
BatchNorm (the segmentation head) would fold a measurement-only pass into its running statistics;
:func:`kept_norm_statistics` restores them around such a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from robustfusion.modules.distributed import all_reduce_mean

#: ``head(features, present, weights) -> logits``: a fusion head followed by its classifier.
LogitHead = Callable[[Mapping[str, Tensor], Mapping[str, Tensor], Tensor], Tensor]


def solo_logits(
    head: LogitHead,
    features: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    modalities: tuple[str, ...],
    weights: Tensor,
    include_fused: bool = False,
) -> tuple[Tensor | None, Tensor]:
    """Logits of ``head`` with one modality present at a time, in one batched call.

    Returns ``(fused, solo)``: ``solo`` is ``[M, B, C]`` (``[M, B, C, H, W]`` for a segmentation
    head; row ``j`` = only modality ``j`` kept; zeros where that modality is absent), ``fused`` the
    ``[B, C]`` logits with every present
    modality when ``include_fused`` (else ``None``). Gradients flow; wrap in ``torch.no_grad``
    for a measurement only. ``weights`` ``[B, M]`` is passed to the head for every row.
    """
    batch = weights.shape[0]
    count = len(modalities)
    blocks = count + int(include_fused)
    device = weights.device
    eye = torch.eye(count, dtype=torch.bool, device=device)
    rows_present: dict[str, Tensor] = {}
    for j, m in enumerate(modalities):
        p = present[m].to(device)
        solo = (eye[:, j].unsqueeze(1) & p.unsqueeze(0)).reshape(-1)  # [M*B]
        rows_present[m] = torch.cat([p, solo]) if include_fused else solo
    keep = torch.stack(list(rows_present.values()), dim=1).any(dim=1)
    repeated = {m: features[m].repeat(blocks, *([1] * (features[m].dim() - 1))) for m in modalities}
    tiled = weights.repeat(blocks, 1)
    if bool(keep.all()):
        logits = head(repeated, rows_present, tiled)
    else:
        kept = head(
            {m: f[keep] for m, f in repeated.items()},
            {m: p[keep] for m, p in rows_present.items()},
            tiled[keep],
        )
        logits = kept.new_zeros(blocks * batch, *kept.shape[1:]).index_put((keep,), kept)
    logits = logits.view(blocks, batch, *logits.shape[1:])
    if include_fused:
        return logits[0], logits[1:]
    return None, logits


def dependency_from_solo(solo: Tensor, present: Tensor) -> Tensor:
    """``[B, M]`` per-sample dependency ``sum_c |solo_logits|`` (0 where absent), no gradient.

    ``solo`` ``[M, B, C]`` as :func:`solo_logits` returns, or ``[M, B, C, H, W]`` (segmentation:
    averaged over the pixels); ``present`` ``BoolTensor[B, M]``.
    """
    values = solo.detach().abs().sum(dim=2)
    if values.dim() > 2:
        values = values.flatten(2).mean(dim=2)
    values = values.t()
    return values * present.to(values.dtype)


@torch.no_grad()
def per_sample_dependency(
    head: LogitHead,
    features: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    modalities: tuple[str, ...],
    weights: Tensor,
) -> Tensor:
    """``[B, M]`` ``sum_c |logits|`` of ``head`` with only one modality present at a time.

    Entries for samples where a modality is absent are 0 (they are never used). All ``M`` single-
    modality passes run as one batched call over a ``M``-fold repeated batch.
    """
    _, solo = solo_logits(head, features, present, modalities, weights)
    mask = torch.stack([present[m] for m in modalities], dim=1).to(weights.device)
    return dependency_from_solo(solo, mask).to(weights.dtype)


@contextmanager
def kept_norm_statistics(*modules: nn.Module | None) -> Iterator[None]:
    """Run a measurement-only pass without changing the BatchNorm running statistics of
    ``modules``: the pass updates copies, and the original buffers (which a pending backward may
    have saved) are put back untouched on exit. Modules without BatchNorm are left alone."""
    names = ("running_mean", "running_var", "num_batches_tracked")
    norms = [
        layer
        for module in modules
        if module is not None
        for layer in module.modules()
        if isinstance(layer, _BatchNorm) and layer.track_running_stats
    ]
    saved = [{name: getattr(layer, name) for name in names} for layer in norms]
    for layer, buffers in zip(norms, saved, strict=True):
        for name, buffer in buffers.items():
            setattr(layer, name, None if buffer is None else buffer.clone())
    try:
        yield
    finally:
        for layer, buffers in zip(norms, saved, strict=True):
            for name, buffer in buffers.items():
                setattr(layer, name, buffer)


class DependencyTracker(nn.Module):
    """The global dependency ``alpha`` ``[M]`` (a registered buffer).

    ``update(per_sample, present)`` averages the per-sample values over the samples where each
    modality is present, all-reduces (sum, count) across processes, then
    ``alpha <- momentum * alpha + (1 - momentum) * alpha_batch`` (momentum 0: the batch's value);
    the first update sets ``alpha``.
    """

    def __init__(self, num_modalities: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"dependency momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("alpha", torch.ones(num_modalities))
        self.register_buffer("initialised", torch.zeros(num_modalities, dtype=torch.bool))

    @torch.no_grad()
    def update(self, per_sample: Tensor, present: Tensor) -> Tensor:
        """Fold one batch into ``alpha``; ``present`` is ``BoolTensor[B, M]``. Returns ``alpha``."""
        mask = present.to(per_sample.dtype)
        stats = torch.stack([(per_sample * mask).sum(dim=0), mask.sum(dim=0)]).to(self.alpha.dtype)
        all_reduce_mean(stats)  # every process calls this once per step, seen or not
        seen = stats[1] > 0
        batch_alpha = stats[0] / stats[1].clamp_min(1e-12)
        blended = torch.where(
            self.initialised,
            self.momentum * self.alpha + (1.0 - self.momentum) * batch_alpha,
            batch_alpha,
        )
        self.alpha.copy_(torch.where(seen, blended, self.alpha))
        self.initialised |= seen
        return self.alpha
