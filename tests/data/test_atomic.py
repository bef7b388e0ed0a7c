"""Atomic writers: a failed write leaves neither a partial file nor a temporary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustfusion.data.atomic import (
    atomic_directory,
    remove_stale_temporaries,
    save_npy,
    write_json,
)


def test_writes_replace_and_leave_no_temporaries(tmp_path: Path) -> None:
    save_npy(tmp_path / "a.npy", np.arange(3))
    save_npy(tmp_path / "a.npy", np.arange(4))
    assert np.load(tmp_path / "a.npy", allow_pickle=False).tolist() == [0, 1, 2, 3]
    write_json(tmp_path / "m.json", {"b": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json"]


def test_a_failing_write_keeps_the_old_file(tmp_path: Path) -> None:
    save_npy(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(ValueError):
        save_npy(tmp_path / "a.npy", np.array([object()], dtype=object))  # pickling refused
    assert np.load(tmp_path / "a.npy", allow_pickle=False).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_atomic_directory_appears_only_on_success(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
    assert (tmp_path / "d" / "f").read_text() == "x"
    (tmp_path / ".x.npy.abc.tmp.npy").write_text("half")
    assert remove_stale_temporaries(tmp_path) == 1 and [p.name for p in tmp_path.iterdir()] == ["d"]
