"""Seeded per-sample Gaussian noise, shared by the ``gaussian`` corruption and by methods that
inject noise during training (UDML, PE)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.corruptions.base import generator, mix_seed
from robustfusion.errors import DataError


def add_gaussian_noise(x: Tensor, std: Tensor, seeds: Tensor) -> Tensor:
    """``x + std_b * eps_b`` with ``eps_b ~ N(0, I)`` drawn from a generator seeded by ``seeds[b]``.

    Args:
        x: ``[B, ...]`` inputs.
        std: ``[B]`` per-sample standard deviations (in the units of ``x``); 0 leaves a row as is.
        seeds: ``[B]`` integer seeds; the same seed always gives the same noise, whatever the
            batch it is in. The noise is drawn on the CPU in float32 and moved to ``x``'s device.
    """
    batch = x.shape[0]
    if std.shape != (batch,) or seeds.shape != (batch,):
        raise DataError(
            f"add_gaussian_noise needs std and seeds of shape [{batch}], got {tuple(std.shape)} and {tuple(seeds.shape)}"
        )
    if bool((std < 0).any()) or not bool(torch.isfinite(std).all()):
        raise DataError("add_gaussian_noise needs finite non-negative standard deviations")
    noise = torch.zeros(x.shape, dtype=torch.float32)
    std_cpu = std.detach().to("cpu", torch.float64)
    for b, s in enumerate(seeds.tolist()):
        if std_cpu[b] > 0:
            noise[b] = torch.randn(x.shape[1:], generator=generator(mix_seed("gaussian", int(s))))
    scale = std.to(x.dtype).reshape((batch,) + (1,) * (x.dim() - 1))
    return x + scale * noise.to(device=x.device, dtype=x.dtype)
