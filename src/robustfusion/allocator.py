"""Keep freed tensor memory inside the process instead of handing it back to the OS [ours].

On CPU, torch allocates tensor storage with the C library's ``malloc``. glibc serves blocks above
its mmap threshold (128 KiB at first, raised on the fly up to 32 MiB) with a fresh ``mmap`` and
returns them with ``munmap`` when freed, and it gives the top of the heap back to the OS once more
than twice that threshold is free there. A training step, an evaluation pass or an MC-dropout
pass allocates and frees the same activations every time (a 256-row pass over avdigits'
spectrograms: 67 MiB for the first convolution's output), so every step pays for the kernel to map
and zero those pages again (minor page faults). :func:`keep_freed_memory` sets, with ``mallopt``,
an mmap threshold of 256 MiB (blocks below it come from the heap; a glibc that refuses more than
32 MiB gets 32 MiB), a trim threshold of 1 GiB (freed memory stays in the heap for the next step)
and a 64 MiB top pad (fewer heap extensions). The numbers computed do not change, only where the
memory lives. The cost: the process keeps the memory it frees for reuse rather than returning
it, so its RSS stays near its peak, and the peak can be higher (freed blocks in the middle of the
heap are not merged back as early). jemalloc and tcmalloc, which PyTorch's performance tuning guide
recommends for CPU work, hold on to freed memory for reuse in the same way.

``benchmarks/bench_allocator.py`` measures it (figures in docs/training.md): on this project's
2-core machine, avdigits ran 2.2-2.4x faster in inference and 1.1-1.2x in training, DMS's
inference on mfeat 1.2-1.3x; mfeat's training steps page-fault in neither setting once warm and
stayed within the run-to-run spread. Peak RSS grew by 0-15 %.

The command line applies it in every process it runs (``robustfusion ...`` and the benchmark's
worker processes); a library user calls it once, early, if they want it. Where the C library is
not glibc (macOS, musl, Windows) nothing happens. ``ROBUSTFUSION_MALLOC=default`` leaves the
allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameter numbers (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap rather than from their own ``mmap``.
MMAP_THRESHOLD = 256 << 20
#: The mmap threshold used where glibc refuses a larger one (older releases cap it at
#: ``HEAP_MAX_SIZE / 2``, 32 MiB on 64-bit systems).
FALLBACK_MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap that is kept rather than returned.
TRIM_THRESHOLD = 1 << 30
#: Extra memory requested whenever the heap grows (fewer ``brk`` calls).
TOP_PAD = 64 << 20
#: Environment variable: ``default`` leaves the C library's allocator settings alone.
ENVIRONMENT = "ROBUSTFUSION_MALLOC"

_applied: dict[str, int] | None = None


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it exports ``gnu_get_libc_version``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on musl
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD,
    trim_threshold: int = TRIM_THRESHOLD,
    top_pad: int = TOP_PAD,
) -> dict[str, int]:
    """Set glibc's mmap threshold, trim threshold and top pad (``mallopt``); return what was set.

    Returns ``{}`` where nothing was changed: not glibc, or ``ROBUSTFUSION_MALLOC=default``.
    An mmap threshold glibc refuses is replaced by 32 MiB (the cap of older releases). Calling
    it again with the same values does nothing more.
    """
    global _applied
    if os.environ.get(ENVIRONMENT, "").strip().lower() == "default":
        return {}
    wanted = {
        "mmap_threshold": int(mmap_threshold),
        "trim_threshold": int(trim_threshold),
        "top_pad": int(top_pad),
    }
    if _applied == wanted:
        return dict(wanted)
    libc = _glibc()
    if libc is None:
        return {}
    codes = {
        "mmap_threshold": M_MMAP_THRESHOLD,
        "trim_threshold": M_TRIM_THRESHOLD,
        "top_pad": M_TOP_PAD,
    }
    applied = {name: value for name, value in wanted.items() if libc.mallopt(codes[name], value)}
    fallback = min(FALLBACK_MMAP_THRESHOLD, wanted["mmap_threshold"])
    if "mmap_threshold" not in applied and libc.mallopt(M_MMAP_THRESHOLD, fallback):
        applied["mmap_threshold"] = fallback
    _applied = wanted if applied == wanted else None
    return applied
