"""File-system faults: a read-only output folder, a full disk, an output path that is a file, a
folder we may not write. Each exits 2 with one line naming the path and the fix, and leaves an
existing run byte-identical.

The read-only and full-disk cases mount a real tmpfs where this process may (root on Linux, as
in CI); the same errors are also injected at the writes, so that they are covered everywhere.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robustfusion import atomic, lock
from robustfusion.cli import main


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny.npz`` and ``run``, a finished one-epoch run."""
    root = tmp_path_factory.mktemp("fs_faults")
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    a = rng.normal(size=(60, 5)).astype(np.float32) + y[:, None]
    np.savez(root / "tiny.npz", y=y, a=a, b=rng.normal(size=(60, 3)).astype(np.float32))
    args = ["train", "--data", str(root / "tiny.npz"), "--epochs", "1", "--no-progress"]
    assert main([*args, "--out", str(root / "run")]) == 0
    return root


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture
def read_only(place: Path, tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs holding a copy of ``run``."""
    mount = tmp_path / "ro"
    if not _mount(mount, "size=4m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected cases cover it")
    try:
        shutil.copytree(place / "run", mount / "run")
        remount = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only here")
        yield mount
    finally:
        _unmount(mount)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs too small for a checkpoint."""
    mount = tmp_path / "full"
    if not _mount(mount, "size=64k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected cases cover it")
    try:
        yield mount
    finally:
        _unmount(mount)


def _one_line_exit_2(status: int, capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_read_only_file_system(
    place: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(place / "tiny.npz")
    before = _snapshot(read_only)
    cases = [
        ["train", "--data", data, "--epochs", "1", "--out", str(read_only / "new")],
        ["train", "--data", data, "--epochs", "1", "--out", str(read_only / "run"), "--overwrite"],
        ["evaluate", str(read_only / "run")],
        ["evaluate", str(place / "run"), "--out", str(read_only / "eval.json")],
        ["benchmark", "--data", data, "--methods", "static", "--epochs", "1", "--no-progress",
         "--out", str(read_only / "bench")],
    ]  # fmt: skip
    for argv in cases:
        line = _one_line_exit_2(main(argv), capsys, "read-only", str(read_only))
        assert "Traceback" not in line
    assert _snapshot(read_only) == before


def test_full_disk(place: Path, full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data", str(place / "tiny.npz"), "--epochs", "2", "--no-progress"]
    _one_line_exit_2(main([*argv, "--out", str(full_disk / "new")]), capsys, "disk is full")
    assert list(full_disk.iterdir()) == []  # the half-written run is gone


def test_output_path_is_a_file(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (place / "a_file").write_text("mine")
    before = _snapshot(place)
    data = str(place / "tiny.npz")
    cases = [
        (["train", "--data", data, "--out", str(place / "a_file")], "is a file"),
        (["train", "--data", data, "--out", str(place / "a_file" / "run")], "not a folder"),
        (["benchmark", "--data", data, "--methods", "static", "--out", str(place / "a_file")],
         "is a file"),
        (["evaluate", str(place / "run"), "--out", str(place / "a_file" / "x.json")],
         "not a folder"),
    ]  # fmt: skip
    for argv, needle in cases:
        _one_line_exit_2(main(argv), capsys, needle)
    assert _snapshot(place) == before


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "disk is full"),
        (errno.EACCES, "permission denied"),
        (errno.EDQUOT, "quota"),
    ],
)
def test_injected_write_errors(
    place: Path,
    code: int,
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same faults where no tmpfs can be mounted (and a folder root could write despite its
    permissions): raised by the lock file and by every atomic write."""
    before = _snapshot(place)
    real_mkstemp = atomic.tempfile.mkstemp

    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(code, "injected", str(kwargs.get("dir", "?")))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    _one_line_exit_2(main(["evaluate", str(place / "run")]), capsys, needle, str(place / "run"))
    monkeypatch.setattr(atomic.tempfile, "mkstemp", real_mkstemp)

    def refuse_lock(path: object, *args: object) -> int:
        raise OSError(code, "injected", str(path))

    monkeypatch.setattr(lock.os, "open", refuse_lock)
    argv = ["train", "--data", str(place / "tiny.npz"), "--epochs", "1", "--no-progress"]
    _one_line_exit_2(main([*argv, "--out", str(place / "run"), "--overwrite"]), capsys, needle)
    _one_line_exit_2(main([*argv, "--out", str(place / "other")]), capsys, needle)
    assert _snapshot(place) == before
