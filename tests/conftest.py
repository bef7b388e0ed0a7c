"""Shared fixtures: single-threaded torch and a tiny learnable two-modality ``.npz``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

# One intra-op thread in this process and in every CLI subprocess a test starts (the CLI reads
# OMP_NUM_THREADS): tests run side by side on small machines, and runs compared byte for byte
# must use the same thread count.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def write_tiny_npz(
    path: Path, n: int = 90, classes: int = 3, seed: int = 0, **extra: np.ndarray
) -> Path:
    """Two vector modalities ``a`` (6-D) and ``b`` (4-D) whose means depend on the class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    a = rng.normal(size=(n, 6)).astype(np.float32) + y[:, None] * 3.0
    b = rng.normal(size=(n, 4)).astype(np.float32) - y[:, None] * 2.0
    arrays = {"y": y, "a": a, "b": b, **extra}
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A tiny learnable dataset in the generic format (3 classes, 90 samples)."""
    return write_tiny_npz(tmp_path / "tiny.npz")


@pytest.fixture
def make_npz(tmp_path: Path) -> Callable[..., Path]:
    """``make_npz(name, **arrays)``: write arrays (override or add to the tiny data) to an npz."""

    def make(name: str, **arrays: np.ndarray) -> Path:
        return write_tiny_npz(tmp_path / name, **arrays)

    return make


@pytest.fixture
def two_processes() -> Callable[..., dict]:
    """``run(worker, *args)``: ``worker(rank, *args, results)`` in two fresh processes; returns
    what each stored in ``results`` (a shared dict). Spawned, not forked: a fork of this pytest
    process inherits its threads and locks (tqdm's monitor, earlier process groups), and a DDP
    test that forked hung once in a full suite on a busy machine."""
    import multiprocessing

    import torch.multiprocessing as mp

    def run(worker: Callable[..., None], *args: object) -> dict:
        with multiprocessing.get_context("spawn").Manager() as manager:
            results = manager.dict()
            mp.start_processes(worker, args=(*args, results), nprocs=2, start_method="spawn")
            return dict(results)

    return run
