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

    def forward(self, x: Tensor, dropout: bool = False) -> tuple[Tensor, Tensor]:
        """``(z [G, B, S], logits [G, B, K])`` of ``x [G, B, D]``; per-element dropout when
        ``dropout`` (training), none otherwise."""
        if dropout:
            x = F.dropout(x, self.p, training=True)
        pre = torch.baddbmm(
            self.projector_bias.unsqueeze(1), x, self.projector_weight.transpose(1, 2)
        )
        z = self._norm(pre)
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

    def mc_logits(self, x: Tensor, masks: HeadMasks) -> Tensor:
        """Unimodal logits ``[G, T, B, K]`` of ``T`` passes under ``masks`` (``[G, T, D]``,
        ``[G, T, S]``).

        ``x`` is ``[G, B, D]`` (one input shared by the passes: MC dropout over the head) or
        ``[G, T, B, D]`` (one input per pass, e.g. from stochastic encoder passes).
        """
        keep_in, keep_z = masks
        scale = 1.0 / (1.0 - self.p)
        weight = self.projector_weight * scale  # the input dropout's 1/(1-p), folded
        # C drop(γ ⊙ n + β) + c = (C ⊙ γ ⊙ m s) n + (C ⊙ m s) β + c: the LayerNorm's affine and
        # the second dropout folded into per-pass classifier weights [G, T, K, S] and biases
        dropped = self.classifier_weight.unsqueeze(1) * (
            keep_z.unsqueeze(2).to(weight.dtype) * scale
        )
        classifier = dropped * self.norm_weight[:, None, None, :]
        bias = (dropped * self.norm_bias[:, None, None, :]).sum(-1)
        bias = bias + self.classifier_bias.unsqueeze(1)  # [G, T, K]
        if x.dim() == 3:
            return _shared_input_passes(
                x, weight, self.projector_bias, keep_in, classifier, bias, self.eps
            )
        masked = weight.unsqueeze(1) * keep_in.unsqueeze(2).to(weight.dtype)
        pre = torch.matmul(x, masked.transpose(-1, -2)) + self.projector_bias[:, None, None]
        normed = F.layer_norm(pre, pre.shape[-1:], eps=self.eps)
        return torch.matmul(normed, classifier.transpose(-1, -2)) + bias.unsqueeze(2)


def _shared_input_passes(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    keep: Tensor,
    classifier: Tensor,
    classifier_bias: Tensor,
    eps: float,
) -> Tensor:
    """``classifier_t · LayerNorm((x ⊙ keep_t) Wᵀ + b) + classifier_bias_t`` for every pass ``t``
    without forming the ``[G, T, B, S]`` projections.

    With ``base = x Wᵀ + b`` (computed once) and ``x_t``, ``W_t`` the inputs and weight columns
    that pass ``t`` drops (≈ ``p · D`` of them), the projection is ``base − x_t W_tᵀ``. Its mean
    and variance over ``S`` and its product with the classifier follow from ``base Wᵀ_t``,
    ``base Cᵀ_t``, the Gram matrix ``W_tᵀ W_t`` and ``C_t W_t``, all of size ``p · D`` or ``K``
    per sample, so the cost is ``T · B · S · (p·D + K)`` multiply-adds and no tensor of size
    ``T · B · S`` is written (exact up to rounding).

    Args:
        x: ``[G, B, D]``; weight: ``[G, S, D]`` (dropout scale included); bias: ``[G, S]``;
        keep: ``BoolTensor[G, T, D]``; classifier: ``[G, T, K, S]``; classifier_bias: ``[G, T, K]``.

    Returns ``[G, T, B, K]``.
    """
    groups, batch, in_dim = x.shape
    samples, out_dim = keep.shape[1], weight.shape[1]
    base = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # [G, B, S]
    dropped = ~keep
    counts = dropped.sum(dim=-1)  # [G, T]
    width = int(counts.max()) if counts.numel() else 0
    order = torch.sort(dropped.to(torch.int8), dim=-1, descending=True, stable=True).indices
    index = order[..., :width]  # [G, T, n]: the dropped inputs first, then padding slots
    valid = torch.arange(width, device=x.device) < counts.unsqueeze(-1)  # [G, T, n]
    # x_t: the dropped inputs of each pass, zero in the padding slots (which zeroes every term
    # below that involves them)
    x_drop = torch.gather(
        x.unsqueeze(1).expand(groups, samples, batch, in_dim),
        -1,
        index.unsqueeze(2).expand(groups, samples, batch, width),
    ) * valid.unsqueeze(2).to(x.dtype)  # [G, T, B, n]
    w_drop = torch.gather(
        weight.unsqueeze(1).expand(groups, samples, out_dim, in_dim),
        -1,
        index.unsqueeze(2).expand(groups, samples, out_dim, width),
    )  # [G, T, S, n]
    # base against every weight column and every pass's classifier, in one product; the columns
    # that pass t drops are then gathered: base W_tᵀ [G, T, B, n] and base C_tᵀ [G, T, B, K]
    right = torch.cat(
        [weight, classifier.permute(0, 3, 1, 2).reshape(groups, out_dim, -1)], dim=2
    )  # [G, S, D + T·K]
    products = torch.bmm(base, right)  # [G, B, D + T·K]
    base_w = torch.gather(
        products[..., :in_dim].unsqueeze(1).expand(groups, samples, batch, in_dim),
        -1,
        index.unsqueeze(2).expand(groups, samples, batch, width),
    )
    base_c = products[..., in_dim:].view(groups, batch, samples, -1).transpose(1, 2)
    # x_t against [W_tᵀW_t | (C_t W_t)ᵀ | mean_S W_t], one product: [G, T, B, n + K + 1]
    ones = torch.full_like(classifier[:, :, :1], 1.0 / out_dim)  # [G, T, 1, S]
    left = torch.cat([w_drop.transpose(-1, -2), classifier, ones], dim=2)  # [G, T, n + K + 1, S]
    products_x = torch.matmul(x_drop, torch.matmul(left, w_drop).transpose(-1, -2))
    gram_x, cw_x, mean_x = products_x.split([width, classifier.shape[2], 1], dim=-1)
    # mean and second moment over S of pre_t = base − x_t W_tᵀ
    mean = base.mean(-1).unsqueeze(1) - mean_x[..., 0]  # [G, T, B]
    square = (
        base.pow(2).mean(-1).unsqueeze(1) + ((gram_x - 2.0 * base_w) * x_drop).sum(-1) / out_dim
    )
    inv_std = torch.rsqrt((square - mean.pow(2)).clamp_min(0.0) + eps)  # [G, T, B]
    # C_t pre_t = base C_tᵀ − x_t (C_t W_t)ᵀ; C_t (mean 1) = mean · rowsum(C_t)
    centred = base_c - cw_x - mean.unsqueeze(-1) * classifier.sum(-1).unsqueeze(2)
    return centred * inv_std.unsqueeze(-1) + classifier_bias.unsqueeze(2)
