from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustfusion.training.files import atomic_write, save_state_dict, write_json


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"b": 1, "a": 2})
    before = target.read_text()
    assert before.index('"a"') < before.index('"b"')  # sorted keys: byte-stable output

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_state_dict_loads_with_weights_only(tmp_path: Path) -> None:
    save_state_dict(tmp_path / "sub" / "model.pt", {"w": torch.arange(3.0)})
    loaded = torch.load(tmp_path / "sub" / "model.pt", weights_only=True)
    assert torch.equal(loaded["w"], torch.arange(3.0))
