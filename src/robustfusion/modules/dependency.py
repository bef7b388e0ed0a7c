"""UDML's modality dependency ``alpha`` (METHODS.md §3, [code] + [ours]).

``alpha_m`` is the mean absolute logit of the *shared* fusion head and classifier when only
modality ``m`` is present (every other modality removed through the fusion's presence mask:
modality dropout), measured without gradient. The global ``alpha`` is an exponential moving
average over training steps kept in a registered buffer (saved in checkpoints, used at evaluation)
and all-reduced across processes under DDP [ours: the released code recomputes it per batch and
forgets it at evaluation]. :func:`per_sample_dependency` also gives the per-sample values the
optional per-sample variant uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from robustfusion.modules.distributed import all_reduce_mean


@torch.no_grad()
def per_sample_dependency(
    head: Callable[[Mapping[str, Tensor], Mapping[str, Tensor], Tensor], Tensor],
    features: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    modalities: tuple[str, ...],
    weights: Tensor,
) -> Tensor:
    """``[B, M]`` mean ``|logits|`` of ``head`` with only one modality present at a time.

    ``head(features, present, weights) -> logits`` is the fusion head followed by the classifier.
    Entries for samples where a modality is absent are 0 (they are never used). All ``M`` single-
    modality passes run as one batched call over a ``M``-fold repeated batch.
    """
    batch = next(iter(features.values())).shape[0]
    count = len(modalities)
    eye = torch.eye(count, dtype=torch.bool, device=weights.device)
    # Row k*B + i is sample i with only modality k kept (absent samples are masked out below).
    solo = {
        m: (eye[:, j].repeat_interleave(batch) & present[m].repeat(count))
        for j, m in enumerate(modalities)
    }
    keep = torch.stack([solo[m] for m in modalities], dim=1).any(dim=1)
    repeated = {m: features[m].repeat(count, *([1] * (features[m].dim() - 1))) for m in modalities}
    result = torch.zeros(count * batch, dtype=weights.dtype, device=weights.device)
    if bool(keep.any()):
        logits = head(
            {m: f[keep] for m, f in repeated.items()},
            {m: p[keep] for m, p in solo.items()},
            weights.repeat(count, 1)[keep],
        )
        result[keep] = logits.abs().mean(dim=1).to(result.dtype)
    return result.view(count, batch).t()


class DependencyTracker(nn.Module):
    """Exponential moving average of the global dependency ``alpha`` ``[M]`` (a registered buffer).

    ``update(per_sample, present)`` averages the per-sample values over the samples where each
    modality is present, all-reduces (sum, count) across processes, then
    ``alpha <- momentum * alpha + (1 - momentum) * alpha_batch``; the first update sets ``alpha``.
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
        """Fold one batch into the average; ``present`` is ``BoolTensor[B, M]``. Returns ``alpha``."""
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
