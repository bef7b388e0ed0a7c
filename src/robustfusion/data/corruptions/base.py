"""The corruption interface and the per-sample seeding every corruption uses.

A corruption is a callable ``(x, modality, severity, seeds) -> (x', keep)`` on the selected,
present rows ``x [R, ...]`` of one modality: ``seeds`` (``LongTensor[R]``, on ``x``'s device)
key each row's random draws (use them as the index of a :class:`robustfusion.rng.Stream`), ``x'``
is the corrupted rows and ``keep`` (``BoolTensor[R]``) says which rows stay present (all of them,
except for ``missing``). Corruptions run on the tensors' device, without a per-row loop.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.rng import Key, Stream


class Corruption(Protocol):
    """``fn(x, modality, severity, seeds) -> (corrupted x, rows kept present)``."""

    def __call__(
        self, x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
    ) -> tuple[Tensor, Tensor]: ...


def sample_seeds(index: Tensor, *parts: Key) -> Tensor:
    """``LongTensor[B]`` of non-negative 63-bit seeds, one per sample index, keyed by ``parts``
    (seed, corruption, ...); on ``index``'s device (``Stream(*parts).seeds(index)``)."""
    return Stream(*parts).seeds(index)


def uniform_from_seeds(seeds: Tensor) -> Tensor:
    """``DoubleTensor[B]`` in [0, 1): one uniform per seed (bits 10..62), on ``seeds``' device."""
    return ((seeds.long() >> 10) & ((1 << 53) - 1)).to(torch.float64) * (1.0 / (1 << 53))
