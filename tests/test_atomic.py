from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.atomic import (
    atomic_directory,
    atomic_path,
    recover_replaced_directory,
    remove_stale_temporaries,
    replace_directory,
    save_figure,
    save_npy,
    save_npz,
    save_state_dict,
    sibling_directory,
    write_json,
)


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"b": 1, "a": 2})
    before = target.read_text()
    assert before.index('"a"') < before.index('"b"')  # sorted keys: byte-stable output

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_state_dict_loads_with_weights_only(tmp_path: Path) -> None:
    save_state_dict(tmp_path / "sub" / "model.pt", {"w": torch.arange(3.0)})
    loaded = torch.load(tmp_path / "sub" / "model.pt", weights_only=True)
    assert torch.equal(loaded["w"], torch.arange(3.0))


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


def test_outputs_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path: Path) -> None:
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        save_npz(tmp_path / "a.npz", {"x": np.zeros(2)})
        save_figure(plt.figure(), tmp_path / "f.png")
        with atomic_directory(tmp_path / "d") as folder:
            (folder / "x").write_text("x")
    finally:
        os.umask(mask)
    for name, mode in (("m.json", 0o644), ("a.npz", 0o644), ("f.png", 0o644), ("d", 0o755)):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert np.load(tmp_path / "a.npz", allow_pickle=False)["x"].tolist() == [0.0, 0.0]


def test_replace_directory_swaps_whole_folders(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "old").write_text("old")
    new = sibling_directory(target)
    assert new.parent == tmp_path and new.name.startswith(".run.rf-new-")
    (new / "new").write_text("new")
    replace_directory(new, target)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old one is gone


def test_a_failed_swap_puts_the_old_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    target = tmp_path / "run"
    target.mkdir()
    (target / "old").write_text("old")
    new = sibling_directory(target)
    real = os.replace

    def failing(src: object, dst: object) -> None:
        if Path(str(src)) == new:
            raise OSError("no space left")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="no space"):
        replace_directory(new, target)
    monkeypatch.undo()
    assert (target / "old").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run", new.name])


def test_recovery_after_a_kill_during_a_swap(tmp_path: Path) -> None:
    target = tmp_path / "run"
    aside = tmp_path / ".run.rf-old-abcd1234"
    (aside / "run").mkdir(parents=True)
    (aside / "run" / "old").write_text("old")
    (tmp_path / ".run.rf-new-efgh5678").mkdir()
    (tmp_path / ".run.b.rf-new-efgh5678").mkdir()  # another folder's: left alone
    done = recover_replaced_directory(target)
    assert len(done) == 2 and (target / "old").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.b.rf-new-efgh5678", "run"]
    # an old folder set aside after the new one arrived is deleted
    (tmp_path / ".run.rf-old-ijkl9012" / "run").mkdir(parents=True)
    assert recover_replaced_directory(target) and not (tmp_path / ".run.rf-old-ijkl9012").exists()
    assert (target / "old").exists()
