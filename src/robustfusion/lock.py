"""A lock per output folder, so that two processes never write one run folder at once.

The lock of ``parent/NAME`` is the file ``parent/.NAME.lock`` (beside the folder, not inside it,
so that it also guards the moment a finished replacement is swapped in). It holds one line of
JSON naming the holder (pid, host, start time, command) and is held with ``flock``: the kernel
releases it when the holder dies, however it dies. A lock file whose holder is gone is stale and
is taken over with a note. On file systems without ``flock`` the lock falls back to the file's
content: a live pid on this host, or any pid on another host, holds it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from robustfusion.errors import FolderBusyError

log = logging.getLogger("robustfusion")

try:  # pragma: no cover - always present on Linux and macOS
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(folder: Path) -> Path:
    """Where the lock of ``folder`` lives: ``.NAME.lock`` beside it."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def read_holder(path: Path) -> dict[str, Any]:
    """The holder recorded in a lock file (empty when unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2026-01-01 10:00:00 (robustfusion train ...)``."""
    if not holder:
        return "another process"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    if "started" in holder:
        text += f" since {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _this_command() -> str:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "robustfusion"):
        program = "robustfusion"
    return " ".join([program, *sys.argv[1:]])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class FolderLock:
    """``with FolderLock(folder, what): ...`` holds ``folder``'s lock for the block.

    Raises :class:`FolderBusyError` (one line naming the holder and the fix) when another live
    process holds it. Not re-entrant; one instance per acquisition.
    """

    def __init__(self, folder: Path, command: str = "") -> None:
        self.folder = Path(folder)
        self.path = lock_path(self.folder)
        self.command = (command or _this_command())[:200]
        self._fd: int | None = None

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):  # the file may be replaced between open and flock: retry
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked is False:
                os.close(fd)
                self._busy(read_holder(self.path))
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released and unlinked by its holder meanwhile: take the new file
                os.close(fd)
                continue
            previous = read_holder(self.path)
            if locked is None and previous and self._held_by_other(previous):
                os.close(fd)
                self._busy(previous)
            self._fd = fd
            self._write_holder(fd)
            if previous and previous.get("pid") != os.getpid():
                log.warning(
                    "took over the stale lock of %s on %s (that process is gone)",
                    describe_holder(previous),
                    self.folder,
                )
            return
        raise FolderBusyError(  # pragma: no cover - a lock file replaced 100 times in a row
            f"cannot lock {self.folder}: its lock file {self.path} keeps changing; retry"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before unlocking: a waiter then re-opens a fresh file
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True when locked, False when another process holds it, None without flock."""
        if fcntl is None:  # pragma: no cover - Windows
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:  # pragma: no cover - file systems without flock
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise
        return True

    @staticmethod
    def _held_by_other(holder: dict[str, Any]) -> bool:
        """Content-based check (no flock): a live pid here, or any holder on another host."""
        if holder.get("host") != socket.gethostname():
            return True
        pid = holder.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)

    def _write_holder(self, fd: int) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": self.command,
        }
        data = (json.dumps(holder) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def _busy(self, holder: dict[str, Any]) -> None:
        raise FolderBusyError(
            f"{self.folder} is in use by {describe_holder(holder)}: wait for it to finish or stop "
            f"it, or choose another --out (lock file {self.path})"
        )
