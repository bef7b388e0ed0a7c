"""The folder lock: one holder at a time, named in the refusal; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from robustfusion.errors import FolderBusyError
from robustfusion.lock import FolderLock, lock_path, read_holder


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with FolderLock(folder, command="robustfusion train --out run") as held:
        assert held.path == lock_path(folder) == tmp_path / ".run.lock"
        holder = read_holder(held.path)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(FolderBusyError) as refused:
            FolderLock(folder).acquire()
        message = str(refused.value)
        assert f"{folder} is in use by pid {os.getpid()} on host {socket.gethostname()}" in message
        assert "(robustfusion train --out run)" in message and "\n" not in message
        assert not folder.exists()  # locking does not create the folder
    assert not held.path.exists()
    with FolderLock(folder):  # free again
        pass


def test_a_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    code = (
        "import sys, time; from pathlib import Path; from robustfusion.lock import FolderLock\n"
        f"lock = FolderLock(Path({str(folder)!r}), command='other'); lock.acquire()\n"
        "print('locked', flush=True); sys.stdin.readline(); lock.release()\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError, match=f"in use by pid {other.pid} on host"):
            FolderLock(folder).acquire()
    finally:
        other.communicate("\n", timeout=60)
    assert not lock_path(folder).exists()


def test_a_stale_lock_is_taken_over_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "yesterday"}
    lock_path(folder).write_text(json.dumps(stale))  # its holder was killed: no flock held
    logger = logging.getLogger("robustfusion")
    propagate, logger.propagate = logger.propagate, True
    try:
        with caplog.at_level(logging.WARNING, logger="robustfusion"), FolderLock(folder) as lock:
            assert read_holder(lock.path)["pid"] == os.getpid()
    finally:
        logger.propagate = propagate
    notes = [r.getMessage() for r in caplog.records if "stale lock" in r.getMessage()]
    assert notes and f"pid {stale['pid']}" in notes[0] and "since yesterday" in notes[0]
