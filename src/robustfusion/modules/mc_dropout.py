"""Monte-Carlo dropout (Gal & Ghahramani, 2016) with explicit masks, and the DMS per-modality head.

DMS (METHODS.md §2) estimates a modality's uncertainty from ``T`` stochastic passes of its
projector and classifier. Running them as a Python loop costs ``T`` forward calls; here the
features are repeated ``T`` times along the batch axis and pushed through the head once. The
dropout masks can be drawn up front (:meth:`MCDropoutHead.sample_masks`) so that the batched pass
and a loop over the same masks give the same numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: ``(input_mask [.., D_in], shared_mask [.., shared_dim])``: keep-masks of a head's two dropouts.
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
        """``x * mask / (1 - p)``; ``mask`` broadcasts against ``x`` (``[T, B, D]`` for ``[B, D]``)."""
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
        self.input_dropout = MCDropout(p)
        self.projector = nn.Linear(in_dim, shared_dim)
        self.norm = nn.LayerNorm(shared_dim)
        self.shared_dropout = MCDropout(p)
        self.classifier = nn.Linear(shared_dim, num_classes)

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
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> HeadMasks:
        """Boolean keep-masks ``([T, B, in_dim], [T, B, shared_dim])`` for :meth:`mc_forward`."""
        return (
            self.input_dropout.sample_mask(
                (samples, batch_size, self.in_dim), device=device, generator=generator
            ),
            self.shared_dropout.sample_mask(
                (samples, batch_size, self.shared_dim), device=device, generator=generator
            ),
        )

    def mc_forward(
        self,
        x: Tensor,
        samples: int,
        masks: HeadMasks | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``T`` stochastic passes as ONE batched pass: ``(z [T, B, S], logits [T, B, K])``.

        ``x`` (``[B, D]``) is broadcast ``T`` times along a leading sample axis (the dropout
        multiplication materialises the repeated batch; no separate copy); dropout is active
        whatever the module's mode. ``masks`` (from :meth:`sample_masks`) fixes the masks.
        """
        if masks is None:
            masks = self.sample_masks(samples, x.shape[0], device=x.device, generator=generator)
        return self(x.unsqueeze(0), masks, active=True)
