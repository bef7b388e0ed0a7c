"""Counter-based random numbers keyed by sample index: the same (seed, index, epoch) always gives
the same draw, whatever the batch composition, worker count or device."""

from __future__ import annotations

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _mix(value: Tensor) -> Tensor:
    """The splitmix64 finaliser on int64 tensors (wrap-around arithmetic, logical shifts)."""
    value = value ^ _logical_shift(value, 30)
    value = value * _signed(0xBF58476D1CE4E5B9)
    value = value ^ _logical_shift(value, 27)
    value = value * _signed(0x94D049BB133111EB)
    return value ^ _logical_shift(value, 31)


def _signed(constant: int) -> int:
    constant &= _MASK64
    return constant - (1 << 64) if constant >= 1 << 63 else constant


def _logical_shift(value: Tensor, bits: int) -> Tensor:
    return (value >> bits) & ((1 << (64 - bits)) - 1)


def hashed_uniform(index: Tensor, *keys: int) -> Tensor:
    """Uniform ``[0, 1)`` floats, one per entry of ``index``, determined by ``(keys, index)``."""
    state = torch.full_like(index, 0, dtype=torch.int64)
    for key in keys:
        state = _mix(state + _signed(int(key) * 0x9E3779B97F4A7C15))
    state = _mix(state + index.to(torch.int64) * _signed(0x9E3779B97F4A7C15))
    return (_logical_shift(state, 11).to(torch.float64) / float(1 << 53)).to(
        torch.get_default_dtype()
    )
