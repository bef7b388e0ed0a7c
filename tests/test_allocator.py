"""allocator: glibc keeps freed tensor memory; the command line and benchmark workers ask for it."""

from __future__ import annotations

import pytest
import torch

from robustfusion import allocator
from robustfusion.cli import main
from robustfusion.evaluation import benchmark

glibc = pytest.mark.skipif(allocator._glibc() is None, reason="the C library is not glibc")


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what an earlier call applied, and clear the opt-out."""
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv(allocator.ENVIRONMENT, raising=False)


@glibc
def test_sets_the_three_thresholds(fresh: None) -> None:
    applied = allocator.keep_freed_memory()
    assert applied == {
        "mmap_threshold": 256 << 20,
        "trim_threshold": 1 << 30,
        "top_pad": 64 << 20,
    }
    assert allocator.keep_freed_memory() == applied  # idempotent
    # tensors allocate, free and compute as before
    x = torch.arange(1 << 22, dtype=torch.float32)
    assert float((x * 2).sum()) == float(x.sum()) * 2


class _OlderGlibc:
    """A C library whose ``mallopt`` refuses mmap thresholds above 32 MiB (glibc < 2.35)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, code: int, value: int) -> int:
        self.calls.append((code, value))
        return int(code != allocator.M_MMAP_THRESHOLD or value <= 32 << 20)


def test_a_refused_mmap_threshold_falls_back_to_32_mib(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    libc = _OlderGlibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    applied = allocator.keep_freed_memory()
    assert applied["mmap_threshold"] == 32 << 20
    assert (allocator.M_MMAP_THRESHOLD, 256 << 20) in libc.calls
    assert allocator.keep_freed_memory() == applied  # not remembered as done: asks again
    assert len(libc.calls) == 8


def test_opt_out_leaves_the_allocator_alone(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.ENVIRONMENT, "default")
    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("mallopt must not be called"))
    assert allocator.keep_freed_memory() == {}


def test_not_glibc_changes_nothing(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.keep_freed_memory() == {}


def test_command_line_and_benchmark_workers_apply_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append("cli") or {})
    monkeypatch.setattr(benchmark, "keep_freed_memory", lambda: calls.append("worker") or {})
    threads = torch.get_num_threads()
    try:
        assert main(["methods"]) == 0
        benchmark._worker_init(1)
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    assert calls == ["cli", "worker"]
