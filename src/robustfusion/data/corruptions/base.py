"""The corruption interface and the per-sample seeding every corruption uses.

A corruption is a callable ``(x, modality, severity, seeds) -> (x', keep)`` on the selected,
present rows ``x [R, ...]`` of one modality: ``seeds`` (``LongTensor[R]``) seed each row's
random draws, ``x'`` is the corrupted rows and ``keep`` (``BoolTensor[R]``) says which rows stay
present (all of them, except for ``missing``).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo

_SEED_MASK = (1 << 63) - 1


class Corruption(Protocol):
    """``fn(x, modality, severity, seeds) -> (corrupted x, rows kept present)``."""

    def __call__(
        self, x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
    ) -> tuple[Tensor, Tensor]: ...


def mix_seed(*parts: object) -> int:
    """A 63-bit integer hashed (BLAKE2b) from ``repr`` of the parts: stable across runs/platforms."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _SEED_MASK


def sample_seeds(index: Tensor, *parts: object) -> Tensor:
    """``LongTensor[B]``: one seed per sample index, from ``parts`` (seed, corruption, ...)."""
    base = mix_seed(*parts)
    return torch.tensor([mix_seed(base, int(i)) for i in index.tolist()], dtype=torch.long)


def uniform_from_seeds(seeds: Tensor) -> Tensor:
    """``DoubleTensor[B]`` in [0, 1): one uniform per seed (its top 53 bits)."""
    return torch.tensor(
        [(int(s) >> 10) / float(1 << 53) for s in seeds.tolist()], dtype=torch.float64
    )


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (one per sample: independent of batch composition)."""
    return torch.Generator().manual_seed(int(seed) & _SEED_MASK)
