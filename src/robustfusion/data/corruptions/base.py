"""The corruption interface and the per-sample seeding every corruption uses.

A corruption is a callable ``(x, modality, severity, seeds) -> (x', keep)`` on the selected,
present rows ``x [R, ...]`` of one modality: ``seeds`` (``LongTensor[R]``, on ``x``'s device)
key each row's random draws (use them as the index of a :class:`robustfusion.rng.Stream`), ``x'``
is the corrupted rows and ``keep`` (``BoolTensor[R]``) says which rows stay present (all of them,
except for ``missing``). Corruptions run on the tensors' device, without a per-row loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.rng import Key, Stream


@dataclass(frozen=True)
class CorruptionFacts:
    """What grids, ``corrupt``, the benchmark and the report know about a corruption, given once
    at its registration (``CORRUPTIONS.register(name, description, facts=...)``).

    ``unit``: what a severity means (the report's axis title). ``bounded``: the severity is a
    fraction or probability, at most 1. ``random``: it draws noise, so the benchmark averages
    ``noise_draws`` draws of it. ``kinds``: the input kinds it applies to (``None``: every kind),
    with ``why_not`` saying why the others are left out. ``intensity_units``: on images and maps with
    a known scale the severity is in raw units, 0-255 intensity units or e.g. metres of depth (the
    grid converts it with ``ModalityInfo.raw_unit_scale``).
    ``removes_modalities``: it marks modalities absent (their weight is 0 by definition).
    ``default_severities`` and ``quick_severities`` (empty: not in the ``--quick`` grid) are the
    grids' levels, 0 first; ``rank`` orders corruptions in grids and reports.
    """

    unit: str
    default_severities: tuple[float, ...]
    rank: int
    quick_severities: tuple[float, ...] = ()
    bounded: bool = False
    random: bool = True
    kinds: tuple[str, ...] | None = None
    why_not: str = ""
    intensity_units: bool = False
    removes_modalities: bool = False


def corruption_facts() -> dict[str, CorruptionFacts]:
    """Every registered corruption's facts, in grid order (``rank``)."""
    from robustfusion.registry import CORRUPTIONS

    entries = sorted(CORRUPTIONS, key=lambda e: e.facts.rank)
    return {entry.name: entry.facts for entry in entries}


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
