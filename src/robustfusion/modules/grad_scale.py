"""Gradient scaling for encoders shared between modalities (ViT-style token models) [ours].

MWAM's gradient mode (Alg. 1 of "Plug, Play, and Fortify") multiplies the gradient of modality
``i``'s encoder by ``K_i``. When one token-based encoder serves every modality, its parameters cannot
be attributed to one modality; instead the gradient that enters each modality's tokens is scaled:
:class:`GradScale` is the identity in the forward pass and multiplies the incoming gradient by
``k`` in the backward pass, and :func:`scale_token_groups` applies it to each modality's slice of
the token sequence. Applied to the tokens that a modality-specific tokenizer (patch embedding)
hands to the shared encoder, every parameter upstream of that point gets exactly ``K_i`` times its
gradient while the shared layers are untouched, as with separate encoders.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


class GradScale(torch.autograd.Function):
    """``y = x`` forward; ``dL/dx = k * dL/dy`` backward (``k`` a float or a 0-d tensor)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, k: Tensor | float) -> Tensor:
        ctx.k = k.detach() if isinstance(k, Tensor) else k  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor, None]:
        k = ctx.k  # type: ignore[attr-defined]
        if isinstance(k, Tensor):
            k = k.to(device=grad.device, dtype=grad.dtype)
        return grad * k, None


def grad_scale(x: Tensor, k: Tensor | float) -> Tensor:
    """Identity whose backward multiplies the gradient by ``k`` (see :class:`GradScale`)."""
    return GradScale.apply(x, k)


def scale_token_groups(
    tokens: Tensor,
    groups: Mapping[str, slice],
    scales: Mapping[str, Tensor | float],
    dim: int = 1,
) -> Tensor:
    """Scale the gradient of each modality's token group by its factor.

    Args:
        tokens: ``[B, N, D]`` (or any tensor whose ``dim`` axis is the token axis).
        groups: modality name -> slice of the token axis holding its tokens; tokens outside every
            group (a CLS token, for example) keep their gradient.
        scales: modality name -> factor ``K_m`` (e.g. ``MWAM.grad_scales()``); a modality without a
            factor is left unscaled.
        dim: the token axis.

    Returns:
        A tensor equal to ``tokens`` whose backward pass scales each group's gradient.
    """
    length = tokens.shape[dim]
    factors: list[Tensor | float] = [1.0] * length
    covered = [False] * length
    for name, span in groups.items():
        for index in range(*span.indices(length)):
            if covered[index]:
                raise ValueError(f"token {index} belongs to two modality groups ({name!r})")
            covered[index] = True
            if name in scales:
                factors[index] = scales[name]
    pieces: list[Tensor] = []
    start = 0
    # Consecutive tokens with the same factor object form one piece (one autograd node each).
    for index in range(1, length + 1):
        if index == length or factors[index] is not factors[start]:
            piece = tokens.narrow(dim, start, index - start)
            k = factors[start]
            pieces.append(piece if isinstance(k, float) and k == 1.0 else grad_scale(piece, k))
            start = index
    return torch.cat(pieces, dim=dim)
