"""Seeds derived from (run seed, epoch), so that a resumed run replays the same random draws."""

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
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
