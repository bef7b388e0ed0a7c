"""Per-sample uniforms keyed by sample index: a thin wrapper over :mod:`robustfusion.rng`.

New code should call :func:`robustfusion.rng.stream` directly (``stream(seed, name, ...)``).
"""

from __future__ import annotations

from torch import Tensor

from robustfusion.rng import Stream


def hashed_uniform(index: Tensor, *keys: int) -> Tensor:
    """Uniform ``[0, 1)`` floats (default dtype), one per entry of ``index``, determined by
    ``(keys, index)`` only; on ``index``'s device."""
    return Stream("hashed-uniform", *(int(k) for k in keys)).uniform(index)
