"""Reproducible per-sample noise levels for UDML's training-time noise injection.

METHODS.md §3 [code]: each training sample gets a level ``v in {1..11}`` per modality, half of
the samples forced clean (``v = 1``). [ours]: the draw comes from :mod:`robustfusion.rng`, keyed
on ``(seed, stream, "train", epoch, modality)`` and the sample index, so it is independent of
batch composition, worker count and device, differs every epoch, and is identical on every rerun
(the released code reseeds globally, which gives every sample the same noise). "Half clean" is a
fair coin per ``(seed, sample, epoch)``: half in expectation, the same coin for all modalities of
a sample. Everything is drawn on ``index``'s device, with no per-sample loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.rng import Stream, stream


def sample_hash(index: Tensor, *keys: int) -> Tensor:
    """Deterministic 31-bit integers (``LongTensor[B]``), one per element of ``index``, from
    integer ``keys`` (stream ``"hash"`` of :mod:`robustfusion.rng`)."""
    return Stream("hash", *(int(k) for k in keys)).bits(index) >> 33 & ((1 << 31) - 1)


def draw_noise_levels(
    index: Tensor, seed: int, epoch: int, modality: int, max_level: int = 11
) -> Tensor:
    """``FloatTensor[B]`` of levels in ``{1..max_level}`` of modality number ``modality``;
    samples whose coin says clean get 1 (column ``modality`` of :func:`draw_all_noise_levels`)."""
    return draw_all_noise_levels(index, seed, epoch, int(modality) + 1, max_level)[:, -1]


def draw_all_noise_levels(
    index: Tensor, seed: int, epoch: int, modalities: int, max_level: int = 11
) -> Tensor:
    """``FloatTensor[B, M]``: every modality's level at once. Element ``j`` of a sample's draw is
    modality ``j``'s level, a function of ``(seed, epoch, index, j)`` alone; one coin per sample
    (``udml-clean``) sets all its modalities clean."""
    clean = stream(seed, "udml-clean", "train", int(epoch)).bernoulli(index, 0.5)
    level = 1 + stream(seed, "udml-level", "train", int(epoch)).integers(
        index, int(max_level), (int(modalities),)
    )
    return torch.where(clean.unsqueeze(1), torch.ones_like(level), level).to(
        torch.get_default_dtype()
    )


def noise_seeds(index: Tensor, seed: int, epoch: int, modality: int) -> Tensor:
    """``LongTensor[B]`` per-sample seeds for the noise itself (independent of the level draw)."""
    return stream(seed, "udml-noise", "train", int(epoch), int(modality)).seeds(index)
