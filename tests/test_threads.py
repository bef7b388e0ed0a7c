"""threads: the default intra-op thread count and the share of parallel workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustfusion import threads
from robustfusion.errors import ConfigError


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A process allowed on 4 cores, no CPU quota, OMP_NUM_THREADS unset."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return quota


def test_default_is_the_cores_this_process_may_use(four_cores: Path) -> None:
    assert threads.available_cores() == 4
    assert threads.default_threads() == 4
    four_cores.write_text("150000 100000\n")  # a container quota of 1.5 CPUs
    assert threads.available_cores() == 2
    four_cores.unlink()  # no cgroup v2 file: the affinity mask alone
    assert threads.available_cores() == 4


def test_omp_num_threads_is_honoured(four_cores: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested list: the outer level
    assert threads.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ConfigError, match="OMP_NUM_THREADS='many'"):
        threads.default_threads()


def test_workers_share_the_cores(four_cores: Path) -> None:
    assert [threads.threads_per_worker(j) for j in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    assert threads.threads_per_worker(2, cores=16) == 8
    with pytest.raises(ConfigError, match="at least 1"):
        threads.threads_per_worker(0)


def test_configure_threads_sets_torch(four_cores: Path) -> None:
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
        assert threads.configure_threads(None) == 4 and torch.get_num_threads() == 4
        with pytest.raises(ConfigError, match="at least 1"):
            threads.configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_passive_waiting_is_a_default_the_user_can_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child: dict[str, str] = {}
    assert threads.prefer_passive_waiting(child) and child == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.prefer_passive_waiting(mine)
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE"}
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert not threads.prefer_passive_waiting()  # torch is imported here: too late to act
    assert threads.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
