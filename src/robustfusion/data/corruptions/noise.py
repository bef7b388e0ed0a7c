"""Seeded per-sample Gaussian noise, shared by the ``gaussian`` corruption and by methods that
inject noise during training (UDML, PE, DMS)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.errors import DataError
from robustfusion.rng import Stream

#: The stream every seed of :func:`add_gaussian_noise` indexes.
_NOISE = Stream("gaussian-noise")


def add_gaussian_noise(x: Tensor, std: Tensor, seeds: Tensor) -> Tensor:
    """``x + std_b * eps_b`` with ``eps_b ~ N(0, I)`` a function of ``seeds[b]`` alone.

    Args:
        x: ``[B, ...]`` inputs.
        std: ``[B]`` per-sample standard deviations (in the units of ``x``); 0 leaves a row as is.
        seeds: ``[B]`` integer seeds; the same seed always gives the same noise, whatever the
            batch it is in. The noise is drawn on ``x``'s device (float32, or float64 for float64
            ``x``) by :class:`robustfusion.rng.Stream`, in one vectorised call.
    """
    batch = x.shape[0]
    if std.shape != (batch,) or seeds.shape != (batch,):
        raise DataError(
            f"add_gaussian_noise needs std and seeds of shape [{batch}], got {tuple(std.shape)} and {tuple(seeds.shape)}"
        )
    if bool(((std < 0) | ~torch.isfinite(std)).any()):
        raise DataError("add_gaussian_noise needs finite non-negative standard deviations")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    noise = _NOISE.normal(seeds.to(x.device), x.shape[1:], dtype=work)
    scale = std.to(x.device, x.dtype).reshape((batch,) + (1,) * (x.dim() - 1))
    return x + scale * noise.to(x.dtype)
