"""Reproducible per-sample noise levels for UDML's training-time noise injection.

METHODS.md §3 [code]: each training sample gets a level ``v in {1..11}`` per modality, half of
the samples forced clean (``v = 1``). [ours]: the draw is a counter-based hash of
``(seed, sample index, epoch, modality)``, so it is independent of batch composition, worker
count and device, differs every epoch, and is identical on every rerun (the released code
reseeds globally, which gives every sample the same noise). "Half clean" is a fair coin per
``(seed, sample, epoch)``: half in expectation, the same coin for all modalities of a sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK = (1 << 31) - 1


def _mix(x: Tensor) -> Tensor:
    """A 31-bit integer hash (xor-shift-multiply rounds); int64 arithmetic never overflows."""
    x = x & _MASK
    for _ in range(2):
        x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & _MASK
        x = ((x ^ (x >> 12)) * 0x297A2D39) & _MASK
    return x ^ (x >> 15)


def sample_hash(index: Tensor, *keys: int) -> Tensor:
    """Deterministic 31-bit hash per element of ``index`` (``LongTensor[B]``) and integer ``keys``."""
    h = _mix(torch.full_like(index, 0x1234567))
    for key in keys:
        h = _mix(h ^ (int(key) & _MASK))
    return _mix(h ^ (index.long() & _MASK))


def draw_noise_levels(
    index: Tensor, seed: int, epoch: int, modality: int, max_level: int = 11
) -> Tensor:
    """``FloatTensor[B]`` of levels in ``{1..max_level}``; samples whose coin says clean get 1."""
    clean = (sample_hash(index, seed, epoch, 0x5EED) & 1) == 0
    level = 1 + sample_hash(index, seed, epoch, 0x1E7E1, modality) % max_level
    return torch.where(clean, torch.ones_like(level), level).to(torch.get_default_dtype())


def noise_seeds(index: Tensor, seed: int, epoch: int, modality: int) -> Tensor:
    """``LongTensor[B]`` per-sample seeds for the noise itself (independent of the level draw)."""
    return sample_hash(index, seed, epoch, 0x401CE, modality)
