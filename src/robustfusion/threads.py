"""How many intra-op threads torch uses, alone or as one of N parallel worker processes [ours].

torch's default is one thread per *machine* core, whatever this process may actually run on (a
CPU affinity mask, a container's CPU quota) and however many sibling processes share the cores.
Oversubscribed OpenMP threads spin-wait for each other and can make a run several times slower
(docs/training.md gives the figures measured on a 2-core machine). The rules here:

* an explicit value wins; else ``OMP_NUM_THREADS`` (the first number of its list) is honoured;
* else the cores this process may use: its affinity mask (``os.sched_getaffinity``), capped by a
  cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``) where one is set;
* N parallel workers share those cores: ``threads_per_worker(jobs) = max(1, cores // jobs)``;
* idle OpenMP threads should sleep, not spin: :func:`prefer_passive_waiting` sets
  ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it. OpenMP reads it once, when torch is first
  imported (``import robustfusion`` imports torch), so it acts on the environment of worker
  processes, or in a process that calls it before any such import. On a 2-core machine shared
  with other processes, 2 threads with the default (active, spinning) policy made a training
  step 9x slower than 1 thread, and two such processes 28x slower; with ``PASSIVE`` they ran as
  fast as 1 thread each (docs/training.md).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

from robustfusion.errors import ConfigError

#: cgroup v2 CPU quota file ("max 100000" or "<quota> <period>").
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_cores(path: Path | None = None) -> int | None:
    """Whole cores allowed by a cgroup v2 quota (rounded up), or None when there is none."""
    try:
        quota, period = (path or CGROUP_CPU_MAX).read_text(encoding="ascii").split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may run on (affinity mask, capped by a cgroup CPU quota)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = _cgroup_cores()
    return max(1, min(cores, quota) if quota is not None else cores)


def _from_environment() -> int | None:
    """``OMP_NUM_THREADS`` as a positive int (first entry of a nested list), or None if unset."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return None
    first = value.split(",")[0].strip()
    if not first.isdigit() or int(first) < 1:
        raise ConfigError(
            f"OMP_NUM_THREADS={value!r} is not a positive number of threads: set a number or unset it"
        )
    return int(first)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else :func:`available_cores`."""
    from_env = _from_environment()
    return from_env if from_env is not None else available_cores()


def threads_per_worker(jobs: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``jobs`` processes sharing ``cores`` (default: available)."""
    if int(jobs) < 1:
        raise ConfigError(f"the number of parallel jobs must be at least 1, got {jobs}")
    total = available_cores() if cores is None else int(cores)
    return max(1, total // int(jobs))


def prefer_passive_waiting(environ: dict[str, str] | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (default ``os.environ``) unless it is set.

    Returns whether the setting can still act in this process (torch not imported yet); for a
    child process's ``environ`` it always acts.
    """
    target = os.environ if environ is None else environ
    target.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return environ is not None or "torch" not in sys.modules


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to ``requested`` (or :func:`default_threads`); return it."""
    if requested is not None and int(requested) < 1:
        raise ConfigError(f"--threads must be at least 1, got {requested}")
    threads = int(requested) if requested is not None else default_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
