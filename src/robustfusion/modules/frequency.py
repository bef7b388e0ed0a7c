"""Frequency Ratio Metric (FRM) of "Plug, Play, and Fortify" (arXiv 2602.22644), Eq. 4.

A modality the network prefers has its low-frequency content learned first; FRM measures the ratio
of low- to high-frequency DCT energy of a modality's input (or features):

* 2-D maps ``[B, C, H, W]`` (images, spectrograms): non-overlapping ``p x p`` patches, orthonormal
  2-D DCT-II per patch (``D X D^T`` as batched matrix products, any device). Low band: the
  top-left ``q x q`` coefficients; high band: the bottom-right ``q x q``, flipped within the block
  so that ``DCT(i, j)`` pairs with ``DCT(p-1-i, p-1-j)`` (released code).
* Vectors ``[B, D]`` (tabular views with no 2-D structure, e.g. mfeat) [ours]: the vector is cut
  into blocks of ``p`` consecutive entries and each gets the orthonormal 1-D DCT-II; low band: the
  first ``q`` coefficients, high band: the last ``q``, flipped so that ``DCT(i)`` pairs with
  ``DCT(p-1-i)``. This is the 1-D analogue of the paper's rule; its "frequencies" only mean
  something where neighbouring entries are related (profiles, spectra), not for arbitrary tables.

``FRM = sum |I_low / (I_high + eps)|`` over batch, channels and patches (one scalar per modality
per batch). Values reach 1e8-1e10, so everything is computed in float64.

Deviations [ours], all documented in docs/mwam.md:
* trailing rows/columns that do not fill a whole patch are dropped (the released code assumes
  sizes divisible by ``p``); maps smaller than ``p`` use a patch of ``min(H, W)`` (vectors:
  ``min(D, p)``), and ``q`` is capped at half the patch so that the bands never overlap;
* ``|I_high + eps|`` is floored at ``eps`` so that a high coefficient of exactly ``-eps`` cannot
  divide by zero (identical to the paper everywhere else);
* ``channel_norm`` divides by the channel count so that 1-channel depth and 3-channel RGB are
  comparable; ``present`` restricts the sum to observed samples and rescales it to the full batch
  size, so that modality dropout does not by itself lower a modality's FRM;
* ``reduction="mean"`` averages instead of summing over samples, channels, patches and band
  coefficients: for equal-size modalities and a fixed batch size this divides every modality's FRM
  by the same constant (MWAM's ratio T is unchanged), and it keeps a 8x8 image and a 64x64
  spectrogram comparable (a sum over patches would favour the larger map by its patch count).

Segmentation: the inputs (``[B, C, H, W]`` images and depth maps) and the encoders' features
(``[B, C, h, w]`` maps) are both 2-D, so FRM is Eq. 4 exactly as the paper and the released code
define it (2-D DCT-II per ``p x p`` patch, the ``q x q`` corner bands); nothing here depends on
the task. Encoder maps are small (8x8 for the ``cnn`` encoder on 64x64 inputs): a map of one
patch or smaller than ``p`` uses the ``min(h, w)`` rule above, and ``mean`` keeps the value
comparable between a 3-channel image and a 128-channel feature map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

#: The paper's epsilon in ``I_low / (I_high + eps)``.
FRM_EPS = 1e-6


_MATRICES: dict[tuple[int, int, torch.dtype, str], Tensor] = {}


def dct_matrix(
    size: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Tensor:
    """Orthonormal DCT-II matrix ``D[k, n] = s_k cos(pi (2n + 1) k / (2 size))``; ``D @ x`` is the
    DCT of ``x`` (equals ``scipy.fft.dct(x, norm="ortho")``)."""
    if size < 1:
        raise ValueError(f"DCT size must be positive, got {size}")
    n = torch.arange(size, dtype=torch.float64, device=device)
    k = n.unsqueeze(1)
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] = matrix[0] / math.sqrt(2.0)
    return matrix.to(dtype)


def band_matrix(size: int, q: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Rows ``0..q-1`` then ``size-1, ..., size-q`` of the DCT matrix, ``[2q, size]`` (cached).

    ``B X B^T`` holds the low band in its top-left and the flipped high band in its bottom-right
    ``q x q`` block: the two bands of Eq. 4 without computing the other coefficients.
    """
    key = (size, q, dtype, str(device))
    matrix = _MATRICES.get(key)
    if matrix is None:
        full = dct_matrix(size, torch.float64, device)
        matrix = torch.cat([full[:q], full.flip(0)[:q]]).to(dtype)
        _MATRICES[key] = matrix
    return matrix


def _as_maps(x: Tensor) -> Tensor:
    """``[B, H, W]`` or ``[B, C, H, W]`` -> ``[B, C, H, W]``."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4:
        return x
    raise ValueError(
        f"block_dct2d needs [B, H, W] or [B, C, H, W] maps, got shape {tuple(x.shape)}"
    )


def block_dct2d(x: Tensor, patch: int = 8) -> Tensor:
    """Orthonormal 2-D DCT-II of every non-overlapping ``patch x patch`` block.

    Args:
        x: ``[B, H, W]`` or ``[B, C, H, W]``; trailing rows/columns beyond a whole patch are dropped.
        patch: block size ``p``.

    Returns:
        ``[B, C, H // p, W // p, p, p]`` coefficients, in ``x``'s dtype and device.
    """
    maps = _as_maps(x)
    b, c, h, w = maps.shape
    nh, nw = h // patch, w // patch
    if nh == 0 or nw == 0:
        raise ValueError(f"maps of size {h}x{w} are smaller than the patch size {patch}")
    blocks = maps[:, :, : nh * patch, : nw * patch]
    blocks = blocks.reshape(b, c, nh, patch, nw, patch).permute(0, 1, 2, 4, 3, 5)
    dct = dct_matrix(patch, dtype=maps.dtype, device=maps.device)
    return dct @ blocks @ dct.transpose(0, 1)


def block_dct1d(x: Tensor, patch: int = 8) -> Tensor:
    """Orthonormal 1-D DCT-II of every block of ``patch`` consecutive entries of ``x [B, D]``.

    Returns ``[B, D // patch, patch]``; trailing entries beyond a whole block are dropped.
    """
    if x.dim() != 2:
        raise ValueError(f"block_dct1d needs vectors [B, D], got shape {tuple(x.shape)}")
    b, d = x.shape
    nb = d // patch
    if nb == 0:
        raise ValueError(f"vectors of size {d} are smaller than the block size {patch}")
    blocks = x[:, : nb * patch].reshape(b, nb, patch)
    dct = dct_matrix(patch, dtype=x.dtype, device=x.device)
    return blocks @ dct.transpose(0, 1)


def frequency_bands(coefficients: Tensor, q: int = 2, dims: int = 2) -> tuple[Tensor, Tensor]:
    """Low and (in-block flipped) high bands of block DCT coefficients.

    ``dims=2``: coefficients ``[..., p, p]`` -> low ``[..., q, q]`` = ``C[:q, :q]`` and high
    ``[..., q, q]`` with ``high[i, j] = C[p-1-i, p-1-j]``. ``dims=1``: ``[..., p]`` -> ``C[:q]`` and
    ``high[i] = C[p-1-i]``.
    """
    if dims == 2:
        low = coefficients[..., :q, :q]
        high = coefficients.flip(-1, -2)[..., :q, :q]
    elif dims == 1:
        low = coefficients[..., :q]
        high = coefficients.flip(-1)[..., :q]
    else:
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    return low, high


def _ratio(low: Tensor, high: Tensor, eps: float) -> Tensor:
    """``|low / (high + eps)|`` with ``|high + eps|`` floored at ``eps`` (never a division by 0)."""
    return low.abs() / (high + eps).abs().clamp_min(max(eps, torch.finfo(torch.float64).tiny))


def frm_per_sample(
    x: Tensor,
    patch: int = 8,
    q: int = 2,
    eps: float = FRM_EPS,
    channel_norm: bool = True,
    mean: bool = False,
) -> Tensor:
    """Per-sample FRM ``[B]`` (float64): ``sum |low / (high + eps)|`` over channels and patches.

    ``x`` is ``[B, D]`` (1-D variant), ``[B, H, W]`` or ``[B, C, H, W]`` (2-D, the paper's rule),
    or ``[B, C, ...]`` with more spatial axes, which are flattened into the last map axis.
    ``channel_norm`` divides the sum by the channel count; ``mean`` averages over channels, patches
    and band coefficients instead of summing (so that maps of different sizes are comparable).
    """
    x = x.detach().to(torch.float64)
    if x.dim() == 2:
        p = min(patch, x.shape[1])
        k = min(q, p // 2) or 1
        nb = x.shape[1] // p
        bands = x[:, : nb * p].reshape(x.shape[0], nb, p) @ band_matrix(p, k, x.dtype, x.device).T
        low, high = bands[..., :k], bands[..., k:]
        channels = 1
    else:
        maps = _as_maps(x) if x.dim() <= 4 else x.flatten(3)
        b, channels, h, w = maps.shape
        p = min(patch, h, w)
        k = min(q, p // 2) or 1
        nh, nw = h // p, w // p
        blocks = maps[:, :, : nh * p, : nw * p].reshape(b, channels, nh, p, nw, p)
        matrix = band_matrix(p, k, maps.dtype, maps.device)
        # [B, C, nh, p, nw, p] -> [B, C, nh, nw, 2k, 2k]: B X B^T per block, as two contractions.
        bands = torch.einsum("ai,bcxiyj,dj->bcxyad", matrix, blocks, matrix)
        low, high = bands[..., :k, :k], bands[..., k:, k:]
    ratio = _ratio(low, high, eps).flatten(1)
    if mean:
        return ratio.mean(dim=1)
    return ratio.sum(dim=1) / channels if channel_norm else ratio.sum(dim=1)


def frm(
    x: Tensor,
    present: Tensor | None = None,
    patch: int = 8,
    q: int = 2,
    eps: float = FRM_EPS,
    channel_norm: bool = True,
    reduction: str = "sum",
) -> Tensor:
    """Batch FRM (Eq. 4) as a float64 scalar.

    ``reduction="sum"``: the paper's sum of :func:`frm_per_sample` over the batch; with ``present``
    (``BoolTensor[B]``) only observed samples count and the sum is rescaled by ``B / n_present``
    [ours]. ``reduction="mean"`` [ours]: the mean ratio per coefficient pair over observed samples,
    channels and patches; for modalities of equal size and a fixed batch size it is the paper's sum
    divided by one common constant, so MWAM's ratio T (Eq. 6) is unchanged, but it stays comparable
    across modalities of different sizes and across a smaller last batch. A batch with no observed
    sample gives 0.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    values = frm_per_sample(
        x, patch=patch, q=q, eps=eps, channel_norm=channel_norm, mean=reduction == "mean"
    )
    mask = (
        torch.ones_like(values)
        if present is None
        else present.to(device=values.device, dtype=values.dtype)
    )
    # No host synchronisation: an all-absent batch gives 0 / 1 = 0.
    observed = mask.sum().clamp_min(1.0)
    scale = 1.0 / observed if reduction == "mean" else values.shape[0] / observed
    return (values * mask).sum() * scale


def frm_modalities(
    inputs: Mapping[str, Tensor],
    present: Mapping[str, Tensor] | None = None,
    patch: int = 8,
    q: int = 2,
    eps: float = FRM_EPS,
    channel_norm: bool = True,
    reduction: str = "sum",
) -> Tensor:
    """:func:`frm` of every modality at once: float64 ``[M]`` in the order of ``inputs``.

    Same values as one :func:`frm` call per modality, but vector modalities that share a block
    size go through one matrix product and one segment sum (MWAM calls this every step, and the
    per-call overhead of six small views would otherwise dominate its cost).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    names = list(inputs)
    columns: dict[str, Tensor] = {}
    groups: dict[int, list[str]] = {}
    for name in names:
        x = inputs[name]
        if x.dim() == 2 and x.shape[1] >= 1:
            groups.setdefault(min(patch, x.shape[1]), []).append(name)
        else:
            columns[name] = frm_per_sample(x, patch, q, eps, channel_norm, reduction == "mean")
    for p, group in groups.items():
        k = min(q, p // 2) or 1
        counts = [inputs[n].shape[1] // p for n in group]
        flat = torch.cat([inputs[n][:, : c * p] for n, c in zip(group, counts, strict=True)], 1)
        flat = flat.detach().to(torch.float64)
        bands = flat.view(flat.shape[0], -1, p) @ band_matrix(p, k, flat.dtype, flat.device).T
        ratio = _ratio(bands[..., :k], bands[..., k:], eps).flatten(1)  # [B, blocks * k]
        # A 0/1 matrix product sums each view's run of blocks (a reduction over a last axis of
        # size k is ~20x slower on CPU).
        segments = _segments(tuple(c * k for c in counts), flat.device, reduction == "mean")
        sums = ratio @ segments  # [B, len(group)]: sums (or means) per view
        for j, name in enumerate(group):
            columns[name] = sums[:, j]
    values = torch.stack([columns[n] for n in names])  # [M, B]
    if present is None or not any(n in present for n in names):
        total = values.sum(1)
        return total / values.shape[1] if reduction == "mean" else total
    reference = next(present[n] for n in names if n in present)
    seen = [present[n] if n in present else torch.ones_like(reference) for n in names]
    mask = torch.stack(seen).to(device=values.device, dtype=values.dtype)
    observed = mask.sum(1).clamp_min(1.0)
    total = (values * mask).sum(1)
    return total / observed if reduction == "mean" else total * (values.shape[1] / observed)


_SEGMENTS: dict[tuple[tuple[int, ...], str, bool], Tensor] = {}


def _segments(counts: tuple[int, ...], device: torch.device, mean: bool = False) -> Tensor:
    """``[sum(counts), len(counts)]`` float64 matrix that sums (or, with ``mean``, averages)
    consecutive runs of ``counts`` columns (cached)."""
    key = (counts, str(device), mean)
    matrix = _SEGMENTS.get(key)
    if matrix is None:
        sizes = torch.tensor(counts)
        owner = torch.repeat_interleave(torch.arange(len(counts)), sizes)
        matrix = torch.nn.functional.one_hot(owner, len(counts)).to(torch.float64)
        if mean:
            matrix = matrix / sizes.to(torch.float64)
        matrix = matrix.to(device)
        _SEGMENTS[key] = matrix
    return matrix
