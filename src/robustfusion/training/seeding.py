"""Seeds derived from (run seed, epoch, batch), so that a resumed run replays the same random draws."""

from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed unique to ``(seed, epoch)``, the same in every process and on every resume."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**31 - 1)


def step_seed(seed: int, epoch: int, batch_idx: int) -> int:
    """A 31-bit seed unique to ``(seed, epoch, batch)``: every step's draws are fixed in advance."""
    return (epoch_seed(seed, epoch) * 31 + int(batch_idx) * 104_729 + 1) % (2**31 - 1)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every accelerator's) global generators.

    ``torch.manual_seed`` visits every backend (CUDA, XPU, MTIA, custom devices): about 1 ms.
    Call it once per run or epoch; per step use :func:`seed_step`.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_step(seed: int, device: torch.device | None = None) -> None:
    """Seed the generators a training step can draw from, cheaply (tens of microseconds):
    Python's, NumPy's, torch's CPU generator and, on a CUDA ``device``, that device's generator.

    Equivalent to :func:`seed_all` for a step that runs on the CPU or on one CUDA device (the
    other devices' generators are not used by it); ``torch.manual_seed`` would also seed every
    other backend, which costs about 1 ms per call.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.default_generator.manual_seed(seed)
    if device is not None and device.type == "cuda" and torch.cuda.is_initialized():
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)
