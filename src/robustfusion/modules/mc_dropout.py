"""Monte-Carlo dropout (Gal & Ghahramani, 2016) with explicit masks, and the DMS per-modality head.

DMS (METHODS.md §2) estimates a modality's uncertainty from ``T`` stochastic passes. Here a pass
is one *sampled network*: its dropout masks are drawn once per pass and shared by every sample of
the batch [ours], so that the ``T`` passes are ``T`` networks applied to the whole batch, a
sample's uncertainty does not depend on the other samples of its batch, and the passes can be
computed without a Python loop:

* a dropout in front of a linear layer is folded into that layer's weight (one masked copy of
  the weight per pass, ``T · out · in`` multiplications, not ``T · B · in``);
* when the ``T`` passes share their input (MC dropout over the head only), ``W (x ⊙ m_t)`` is
  computed as ``W x − W_{:,dropped} x_{dropped}``: the dense product once, then a correction over
  the ≈ ``p · in`` dropped inputs of each pass (exact up to rounding, ≈ ``p`` of the dense cost);
* the heads of all modalities with equal feature sizes are stacked and run as one batched pass
  (:class:`StackedHeads`).

The masks can be drawn up front (:meth:`MCDropoutHead.sample_masks`) so that the batched pass
and a loop of single passes under the same masks give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``(input_keep [T, in_dim], shared_keep [T, shared_dim])``: boolean keep-masks of a head's two
#: dropouts for ``T`` passes, shared by the samples of a batch.
HeadMasks = tuple[Tensor, Tensor]


class MCDropout(nn.Module):
    """Inverted dropout that can stay active at evaluation and accepts an explicit keep-mask.

    ``forward(x, mask)`` returns ``x * mask / (1 - p)``; without a mask it draws one when
    ``active`` (default: ``self.training``), from ``generator`` when given.
    """

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def sample_mask(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A boolean keep-mask, ``True`` with probability ``1 - p``."""
        return torch.rand(shape, device=device, generator=generator) < (1.0 - self.p)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        active: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``x * mask / (1 - p)``; ``mask`` broadcasts against ``x`` (``[T, 1, D]`` for ``[B, D]``)."""
        if mask is None:
            if not (self.training if active is None else active) or self.p == 0.0:
                return x
            mask = self.sample_mask(tuple(x.shape), device=x.device, generator=generator)
        return torch.mul(x * (1.0 / (1.0 - self.p)), mask)


class MCDropoutHead(nn.Module):
    """A modality's projector into the shared space and its unimodal classifier (DMS, §2).

    ``z = LayerNorm(W_p · drop(f))`` and ``logits = W_c · drop(z)``. The LayerNorm keeps the
    modalities' embeddings on one scale so that their weights, not their norms, decide the fusion
    [ours]. :meth:`mc_forward` runs ``T`` stochastic passes as one batched pass.
    """

    def __init__(self, in_dim: int, shared_dim: int, num_classes: int, p: float = 0.1) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.shared_dim = shared_dim
        self.num_classes = num_classes
        self.input_dropout = MCDropout(p)
        self.projector = nn.Linear(in_dim, shared_dim)
        self.norm = nn.LayerNorm(shared_dim)
        self.shared_dropout = MCDropout(p)
        self.classifier = nn.Linear(shared_dim, num_classes)

    @property
    def p(self) -> float:
        return self.input_dropout.p

    def forward(
        self, x: Tensor, masks: HeadMasks | None = None, active: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(z [N, shared_dim], logits [N, K])``; dropout per ``masks``, else per ``active``."""
        mask_in, mask_z = masks if masks is not None else (None, None)
        z = self.norm(self.projector(self.input_dropout(x, mask_in, active)))
        return z, self.classifier(self.shared_dropout(z, mask_z, active))

    def sample_masks(
        self,
        samples: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> HeadMasks:
        """Boolean keep-masks ``([T, in_dim], [T, shared_dim])``, one per pass, for the batch."""
        return (
            self.input_dropout.sample_mask(
                (samples, self.in_dim), device=device, generator=generator
            ),
            self.shared_dropout.sample_mask(
                (samples, self.shared_dim), device=device, generator=generator
            ),
        )

    def mc_logits(
        self,
        x: Tensor,
        samples: int,
        masks: HeadMasks | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``T`` stochastic passes as ONE batched pass: the unimodal logits ``[T, B, K]``.

        ``x`` is ``[B, D]`` (the same input for every pass) or ``[T, B, D]`` (one input per pass,
        e.g. the outputs of ``T`` stochastic encoder passes). Dropout is active whatever the
        module's mode; ``masks`` (from :meth:`sample_masks`) fixes it.
        """
        if masks is None:
            masks = self.sample_masks(samples, device=x.device, generator=generator)
        stacked = StackedHeads.of([self])
        return stacked.mc_logits(x.unsqueeze(0), (masks[0][None], masks[1][None]))[0]


@dataclass(frozen=True)
class StackedHeads:
    """The parameters of ``G`` :class:`MCDropoutHead` of equal shapes, stacked along a leading
    axis (the stacking is differentiable), so that all of them run as one batched pass."""

    projector_weight: Tensor  # [G, S, D]
    projector_bias: Tensor  # [G, S]
    norm_weight: Tensor  # [G, S]
    norm_bias: Tensor  # [G, S]
    classifier_weight: Tensor  # [G, K, S]
    classifier_bias: Tensor  # [G, K]
    p: float
    eps: float

    @classmethod
    def of(cls, heads: Sequence[MCDropoutHead]) -> StackedHeads:
        """Stack ``heads`` (same ``in_dim``, ``shared_dim``, classes, dropout and epsilon)."""
        first = heads[0]
        for head in heads[1:]:
            if (head.in_dim, head.shared_dim, head.num_classes, head.p, head.norm.eps) != (
                first.in_dim,
                first.shared_dim,
                first.num_classes,
                first.p,
                first.norm.eps,
            ):
                raise ValueError("only heads of equal shapes and dropout can be stacked")
        return cls(
            projector_weight=torch.stack([h.projector.weight for h in heads]),
            projector_bias=torch.stack([h.projector.bias for h in heads]),
            norm_weight=torch.stack([h.norm.weight for h in heads]),
            norm_bias=torch.stack([h.norm.bias for h in heads]),
            classifier_weight=torch.stack([h.classifier.weight for h in heads]),
            classifier_bias=torch.stack([h.classifier.bias for h in heads]),
            p=first.p,
            eps=first.norm.eps,
        )

    def _norm(self, pre: Tensor) -> Tensor:
        """LayerNorm over the last axis with each head's affine; ``pre`` is ``[G, ..., S]``."""
        shape = (pre.shape[0],) + (1,) * (pre.dim() - 2) + (pre.shape[-1],)
        normed = F.layer_norm(pre, pre.shape[-1:], eps=self.eps)
        return normed * self.norm_weight.view(shape) + self.norm_bias.view(shape)

    def projection(self, x: Tensor) -> Tensor:
        """``x Wᵀ`` of the projectors (no bias), ``[G, B, S]`` for ``x [G, B, D]``."""
        return torch.bmm(x, self.projector_weight.transpose(1, 2))

    def forward(
        self, x: Tensor, dropout: bool = False, projection: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(z [G, B, S], logits [G, B, K])`` of ``x [G, B, D]``; per-element dropout when
        ``dropout`` (training), none otherwise. ``projection`` reuses :meth:`projection` of
        ``x`` (without dropout)."""
        if dropout:
            x = F.dropout(x, self.p, training=True)
        if projection is None or dropout:
            projection = self.projection(x)
        z = self._norm(projection + self.projector_bias.unsqueeze(1))
        hidden = F.dropout(z, self.p, training=True) if dropout else z
        logits = torch.baddbmm(
            self.classifier_bias.unsqueeze(1), hidden, self.classifier_weight.transpose(1, 2)
        )
        return z, logits

    def sample_masks(
        self,
        samples: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> HeadMasks:
        """Keep-masks ``([G, T, D], [G, T, S])``, one per head and pass."""
        groups, shared, in_dim = self.projector_weight.shape
        keep = 1.0 - self.p
        return (
            torch.rand((groups, samples, in_dim), device=device, generator=generator) < keep,
            torch.rand((groups, samples, shared), device=device, generator=generator) < keep,
        )

    def mc_classifier_logits(self, z: Tensor, keep_z: Tensor) -> Tensor:
        """Logits ``[G, T, B, K]`` of ``T`` passes of the classifiers alone, dropout on the
        shared embeddings ``z [G, B, S]`` under ``keep_z [G, T, S]``: one product."""
        groups, batch, _ = z.shape
        samples = keep_z.shape[1]
        scale = 1.0 / (1.0 - self.p)
        weight = self.classifier_weight.unsqueeze(1) * (keep_z.unsqueeze(2).to(z.dtype) * scale)
        logits = torch.bmm(z, weight.reshape(groups, -1, z.shape[2]).transpose(1, 2))
        logits = logits.view(groups, batch, samples, -1).transpose(1, 2)
        return logits + self.classifier_bias[:, None, None, :]

    def mc_logits(
        self,
        x: Tensor,
        masks: HeadMasks,
        projection: Tensor | None = None,
        dropped: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Unimodal logits ``[G, T, B, K]`` of ``T`` passes under ``masks`` (``[G, T, D]``,
        ``[G, T, S]``).

        ``x`` is ``[G, B, D]`` (one input shared by the passes: MC dropout over the head;
        ``projection`` may give its :meth:`projection`; ``dropped`` the masks'
        :func:`dropped_indices` when the same masks serve many batches) or ``[G, T, B, D]`` (one
        input per pass, e.g. from stochastic encoder passes).
        """
        keep_in, keep_z = masks
        scale = 1.0 / (1.0 - self.p)
        # C drop(γ ⊙ n + β) + c = (C ⊙ γ ⊙ m s) n + (C ⊙ m s) β + c: the LayerNorm's affine and
        # the second dropout folded into per-pass classifier weights [G, T, K, S] and biases
        keep = keep_z.to(x.dtype) * scale  # [G, T, S]
        bias = torch.matmul(
            self.classifier_weight * self.norm_bias.unsqueeze(1), keep.transpose(1, 2)
        ).transpose(1, 2) + self.classifier_bias.unsqueeze(1)  # [G, T, K]
        affine = self.classifier_weight * self.norm_weight.unsqueeze(1)  # [G, K, S]
        if x.dim() == 3:
            if projection is None:
                projection = self.projection(x)
            if dropped is None:
                dropped = dropped_indices(masks)
            return _shared_input_passes(x, projection, self, scale, dropped, affine, keep, bias)
        weight = self.projector_weight * scale  # the input dropout's 1/(1-p), folded
        masked = weight.unsqueeze(1) * keep_in.unsqueeze(2).to(weight.dtype)
        pre = torch.matmul(x, masked.transpose(-1, -2)) + self.projector_bias[:, None, None]
        normed = F.layer_norm(pre, pre.shape[-1:], eps=self.eps)
        classifier = affine.unsqueeze(1) * keep.unsqueeze(2)  # [G, T, K, S]
        return torch.matmul(normed, classifier.transpose(-1, -2)) + bias.unsqueeze(2)


def _dropped(keep: Tensor) -> Tensor:
    """Indices ``[G, T, n]`` of the dropped entries of ``keep [G, T, N]`` (``n`` = the largest
    count), padded with ``N`` (the index of an appended zero row)."""
    dropped = ~keep
    size = keep.shape[-1]
    slot = dropped.to(torch.int32).cumsum(dim=-1) - 1  # the rank of each dropped entry
    width = int(slot[..., -1].max()) + 1 if keep.numel() else 0
    # kept entries write to a scratch slot past the end, which is cut off
    slot = torch.where(dropped, slot, width).long()
    index = torch.full((*keep.shape[:-1], width + 1), size, dtype=torch.long, device=keep.device)
    source = torch.arange(size, device=keep.device).expand_as(slot)
    return index.scatter_(-1, slot, source)[..., :width]


def dropped_indices(masks: HeadMasks) -> tuple[Tensor, Tensor]:
    """The dropped entries of keep-masks ``([G, T, D], [G, T, S])`` as the padded index tensors
    the shared-input passes gather with (what :meth:`StackedHeads.mc_logits` computes on each call
    unless given them)."""
    return _dropped(masks[0].bool()), _dropped(masks[1].bool())


def _flat(index: Tensor, rows: int) -> Tensor:
    """``index [G, T, n]`` into rows of a ``[G, rows, C]`` table as indices into its
    ``[G · rows, C]`` flattening (for :func:`_rows`)."""
    offset = torch.arange(index.shape[0], device=index.device).view(-1, 1, 1) * rows
    return (index + offset).reshape(-1)


def _rows(table: Tensor, flat: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``table[g, index[g, t, i], :]`` as ``[*shape, C]`` for ``table [G, R, C]``, with ``flat =
    _flat(index, R)`` and ``shape = index.shape`` (one row copy each)."""
    groups, rows, columns = table.shape
    return table.reshape(groups * rows, columns).index_select(0, flat).view(*shape, columns)


def _pad_row(table: Tensor) -> Tensor:
    """``table [G, R, C]`` with a zero row appended: ``[G, R + 1, C]``."""
    return F.pad(table, (0, 0, 0, 1))


def _shared_input_passes(
    x: Tensor,
    projection: Tensor,
    heads: StackedHeads,
    scale: float,
    dropped: tuple[Tensor, Tensor],
    affine: Tensor,
    keep_z: Tensor,
    bias: Tensor,
) -> Tensor:
    """``C_t · LayerNorm((x ⊙ keep_t) Wᵀ s + b) + bias_t`` for every pass ``t`` without forming
    the ``[G, T, B, S]`` projections (``C_t = affine ⊙ keep_z_t``; ``s = 1/(1 − p)``).

    With ``base = s·x Wᵀ + b`` (from ``projection = x Wᵀ``) and ``x_t``, ``W_t`` the inputs and
    weight columns that pass ``t`` drops (≈ ``p · D`` of them), the projection is
    ``base − s·x_t W_tᵀ``. Its mean and variance over ``S`` and its product with ``C_t`` follow
    from ``W_tᵀ base`` (one product ``W base``), the Gram matrix ``W_tᵀ W_t``, ``C_t W_t`` and
    ``C_t base`` (``affine · base`` minus the ≈ ``p · S`` entries ``keep_z_t`` drops). The work
    is laid out feature-major (``[.., B]`` last) so that selecting the dropped entries copies
    rows. ``dropped``: :func:`dropped_indices` of the masks. Exact up to rounding; ``[G, T, B, K]``
    logits.
    """
    out_dim, num_classes = projection.shape[2], affine.shape[1]
    base = projection * scale + heads.projector_bias.unsqueeze(1)  # [G, B, S]
    base_t = base.transpose(1, 2)  # [G, S, B]
    mean_base = base.mean(-1).unsqueeze(1)  # [G, 1, B]
    square_base = base.pow(2).mean(-1).unsqueeze(1)
    # the dropped inputs of each pass, feature-major: x_t [G, T, n, B], W_tᵀ [G, T, n, S]
    index, index_z = dropped  # of the input and the shared-embedding masks
    width = index.shape[-1]
    flat, shape = _flat(index, x.shape[-1] + 1), tuple(index.shape)
    weight_t = _pad_row(heads.projector_weight.transpose(1, 2) * scale)  # [G, D + 1, S]
    x_drop = _rows(_pad_row(x.transpose(1, 2)), flat, shape)  # [G, T, n, B]
    w_drop = _rows(weight_t, flat, shape)  # [G, T, n, S]
    base_w = _rows(torch.bmm(weight_t, base_t), flat, shape)  # (W_tᵀ base) [G, T, n, B]
    # [W_tᵀ W_t | C_t W_t | mean_S W_t] x_t in one product: [G, T, n + K + 1, B]
    classifier = affine.unsqueeze(1) * keep_z.unsqueeze(2)  # [G, T, K, S]
    ones = torch.full_like(classifier[:, :, :1], 1.0 / out_dim)
    left = torch.cat([w_drop, classifier, ones], dim=2)
    products = torch.matmul(torch.matmul(left, w_drop.transpose(-1, -2)), x_drop)
    gram_x, classifier_x, mean_x = products.split([width, num_classes, 1], dim=2)
    # mean and second moment over S of pre_t = base − x_t W_tᵀ: [G, T, B]
    mean = mean_base - mean_x[:, :, 0]
    square = square_base + ((gram_x - 2.0 * base_w) * x_drop).sum(2) / out_dim
    inv_std = torch.rsqrt((square - mean.pow(2)).clamp_min(0.0) + heads.eps)
    # C_t base = affine base − Σ_{s dropped by keep_z_t} affine[:, s] base[s]
    flat_z, shape_z = _flat(index_z, out_dim + 1), tuple(index_z.shape)
    affine_base = torch.bmm(affine * scale, base_t).unsqueeze(1)  # [G, 1, K, B]
    dropped_c = _rows(_pad_row(affine.transpose(1, 2) * scale), flat_z, shape_z)  # [G,T,nz,K]
    dropped_base = _rows(_pad_row(base_t), flat_z, shape_z)  # [G, T, nz, B]
    classifier_base = affine_base - torch.matmul(dropped_c.transpose(-1, -2), dropped_base)
    rowsum = classifier.sum(-1).unsqueeze(-1)  # C_t 1: [G, T, K, 1]
    centred = classifier_base - classifier_x - mean.unsqueeze(2) * rowsum  # [G, T, K, B]
    logits = centred * inv_std.unsqueeze(2) + bias.unsqueeze(-1)
    return logits.transpose(-1, -2)
