"""One counter-based random source for every per-sample draw [ours].

A draw is a pure function of ``(keys, sample index, element position)``: no generator state, no
per-sample Python loop. The same sample therefore gets the same numbers whatever the batch size,
the order of the batch, the number of loader workers, a restart, or the device the index tensor
lives on; and a whole batch is drawn with a few vectorised int64 operations on that device.

**Construction.** The keys (ints, strings, floats) are folded once, in Python, into one 64-bit
key (strings and floats through BLAKE2b). Each sample's stream starts at
``s = mix(key + index * G)`` and element ``j`` of its ``[*shape]`` draw is
``mix(s + (j + 1) * G)``, where ``mix`` is the splitmix64 finaliser and ``G`` the golden-ratio
increment: SplitMix64 (Steele et al., 2014) with one stream per (key, index). The arithmetic is
int64 with wrap-around and masked (logical) right shifts, identical on every device.

**What is bit-identical everywhere.** :meth:`Stream.bits`, :meth:`Stream.integers` and
:meth:`Stream.uniform` are exact integer operations (a uniform is ``k * 2^-24`` in float32 or
``k * 2^-53`` in float64), so they are the same on CPU and GPU. :meth:`Stream.normal` (Box-Muller
on two uniforms taken from one 64-bit word, giving the pair of elements ``2p, 2p + 1``) goes
through ``log``, ``sqrt``, ``cos``/``sin``: identical across calls and batchings on one device,
equal to float rounding (a few ulp) across devices whose math libraries differ.

**Key layout.** Every stream of the package is ``stream(seed, name, *more)`` and then the sample
index tensor; the element position inside the sample's draw comes last:

=====================  ==========================================  ==========================
stream name            keys after ``(seed, name)``                 used by
=====================  ==========================================  ==========================
``udml-clean``         split ``"train"``, epoch                    UDML's half-clean coin
``udml-level``         split ``"train"``, epoch, modality index    UDML's noise level ``v``
``udml-noise``         split ``"train"``, epoch, modality index    UDML's noise seeds
``modality-dropout``   split ``"train"``, epoch, modality index    modality dropout
``corrupt-each``       modality name                               ``target="each"`` selection
``corrupt``            corruption, severity, modality name         per-row corruption seeds
``corrupt-keep-one``   corruption, severity                        which modality is kept
``hash``               the caller's integer keys                   ``sample_hash`` (DMS)
``dms-mc``             ``"input"``/``"shared"``, modality name     DMS's evaluation MC masks
``shaspec-drop``       split ``"train"``, epoch                    ShaSpec's missing subsets
``conflict-select``    (none; ``conflict-noise-select`` too)       RCML's conflictive samples
``conflict-noise-*``   ``-count``, ``-views``; ``conflict-noise``:  RCML's noisy views, noise
                       modality name
``conflict-view``      (none)                                      RCML's replaced view
``conflict-donor``     (none)                                      RCML's random donor
=====================  ==========================================  ==========================

DMS's evaluation masks use the pass number ``0..T-1`` as the "index".

Corruption rows are then keyed by their seed (as the "index") under the unseeded streams
``gaussian-noise``, ``salt-pepper-hit``, ``salt-pepper-salt`` and ``missing``. The split is part
of the key wherever the same index numbers could be drawn for two splits and must not coincide
(training streams); evaluation corruptions are applied to one split at a time and need not name it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import operator
import struct
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB

Key = int | str | float


def _signed(value: int) -> int:
    """``value`` modulo 2^64 as a signed int64 (what an int64 tensor holds)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _mix_int(value: int) -> int:
    """splitmix64's finaliser on a Python int (unsigned 64-bit result)."""
    value &= _MASK64
    value = ((value ^ (value >> 30)) * _M1) & _MASK64
    value = ((value ^ (value >> 27)) * _M2) & _MASK64
    return value ^ (value >> 31)


def _part_value(part: Key) -> int:
    """A 64-bit value for one key part; the type is part of it, so ``1``, ``1.0`` and ``"1"`` differ."""
    if isinstance(part, str):
        data = b"s" + part.encode("utf-8")
    elif isinstance(part, float):
        data = b"f" + struct.pack("<d", part)
    else:
        try:
            return _mix_int(operator.index(part) & _MASK64)  # int, bool, numpy integers
        except TypeError:
            raise TypeError(f"rng keys are int, str or float, got {type(part).__name__}") from None
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=4096, typed=True)
def key(*parts: Key) -> int:
    """Fold ``parts`` into one signed 64-bit key (order matters; computed once, in Python, and
    cached: the same parts of the same types give the same key without hashing again)."""
    state = 0x6A09E667F3BCC908
    for part in parts:
        state = _mix_int((state + _GOLDEN) ^ _part_value(part))
    return _signed(state)


def _shr(value: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 values (torch's ``>>`` is arithmetic)."""
    return (value >> bits) & ((1 << (64 - bits)) - 1)


def _mix_(value: Tensor) -> Tensor:
    """splitmix64's finaliser on an int64 tensor, in place (wrap-around multiplication)."""
    value ^= _shr(value, 30)
    value *= _signed(_M1)
    value ^= _shr(value, 27)
    value *= _signed(_M2)
    value ^= _shr(value, 31)
    return value


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


class Stream:
    """A keyed family of per-sample random streams: ``Stream(seed, "name", epoch, ...)``.

    Every method takes ``index`` (an integer tensor ``[B]``, on any device; the result is on the
    same device) and a per-sample ``shape``; the result is ``[B, *shape]`` and its element
    ``[b, *pos]`` depends only on ``(keys, index[b], pos)``.
    """

    __slots__ = ("key",)

    def __init__(self, *parts: Key) -> None:
        self.key = key(*parts)

    def __repr__(self) -> str:
        return f"Stream(key={self.key:#x})"

    def _starts(self, index: Tensor) -> Tensor:
        if index.dim() != 1:
            raise ValueError(
                f"rng: index must be a 1-D tensor of sample indices, got shape {tuple(index.shape)}"
            )
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise ValueError(f"rng: index must hold integers, got {index.dtype}")
        start = index.to(torch.int64) * _signed(_GOLDEN)
        start += self.key
        return _mix_(start)

    def _words(self, index: Tensor, count: int) -> Tensor:
        """``LongTensor[B, count]``: 64 random bits for counters ``1..count`` of every sample."""
        start = self._starts(index)
        counter = torch.arange(1, count + 1, dtype=torch.int64, device=index.device)
        return _mix_(start.unsqueeze(1) + counter * _signed(_GOLDEN))

    def bits(self, index: Tensor, shape: int | Sequence[int] = ()) -> Tensor:
        """``LongTensor[B, *shape]`` of 64 random bits each (any int64 value, sign included)."""
        dims = _shape(shape)
        return self._words(index, math.prod(dims)).reshape(index.shape[0], *dims)

    def seeds(self, index: Tensor, shape: int | Sequence[int] = ()) -> Tensor:
        """``LongTensor[B, *shape]`` of non-negative 63-bit integers (seeds for a sub-stream)."""
        return _shr(self.bits(index, shape), 1)

    def integers(
        self, index: Tensor, high: int | Tensor, shape: int | Sequence[int] = ()
    ) -> Tensor:
        """``LongTensor[B, *shape]`` uniform in ``[0, high)``; ``high`` an int or a tensor that
        broadcasts against ``[B, *shape]`` (e.g. ``[B, 1]`` per sample); modulo bias < high/2^63."""
        if isinstance(high, Tensor):
            high = high.to(torch.int64)
            if bool((high < 1).any()):
                raise ValueError("rng.integers: high must be at least 1")
        elif int(high) < 1:
            raise ValueError(f"rng.integers: high must be at least 1, got {high}")
        return self.seeds(index, shape) % high

    def uniform(
        self,
        index: Tensor,
        shape: int | Sequence[int] = (),
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``[B, *shape]`` uniforms in ``[0, 1)``: ``k / 2^53`` in float64, ``k / 2^24`` otherwise
        (then cast to ``dtype``, default :func:`torch.get_default_dtype`); exact on every device."""
        dtype = dtype or torch.get_default_dtype()
        words = self.bits(index, shape)
        if dtype == torch.float64:
            return _shr(words, 11).to(torch.float64) * (1.0 / (1 << 53))
        return (_shr(words, 40).to(torch.float32) * (1.0 / (1 << 24))).to(dtype)

    def normal(
        self,
        index: Tensor,
        shape: int | Sequence[int] = (),
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``[B, *shape]`` standard normals (Box-Muller; one 64-bit word gives elements 2p, 2p+1).

        float64 uses two 32-bit uniforms per pair; other dtypes compute in float32 from two
        24-bit uniforms (tails reach 5.9 standard deviations) and cast to ``dtype``.
        """
        dtype = dtype or torch.get_default_dtype()
        dims = _shape(shape)
        count = math.prod(dims)
        words = self._words(index, (count + 1) // 2)
        if dtype == torch.float64:
            work, width = torch.float64, 32
        else:
            work, width = torch.float32, 24
        scale = 1.0 / (1 << width)
        high = _shr(words, 64 - width).to(work)
        low = (_shr(words, 32 - width) & ((1 << width) - 1)).to(work)
        radius = torch.sqrt(-2.0 * torch.log((high + 0.5) * scale))
        angle = low * (2.0 * math.pi * scale)
        pairs = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)
        flat = pairs.reshape(index.shape[0], 2 * words.shape[1])[:, :count]
        return flat.reshape(index.shape[0], *dims).to(dtype)

    def bernoulli(self, index: Tensor, p: float, shape: int | Sequence[int] = ()) -> Tensor:
        """``BoolTensor[B, *shape]``, each ``True`` with probability ``p`` (from 53-bit uniforms)."""
        return self.uniform(index, shape, torch.float64) < float(p)


def stream(*parts: Key) -> Stream:
    """``Stream(*parts)``: the conventional spelling is ``stream(seed, name, *more)``."""
    return Stream(*parts)
