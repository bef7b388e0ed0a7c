from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from robustfusion.cli import main
from robustfusion.errors import ConfigError, RunFolderError
from robustfusion.training import run as run_module
from robustfusion.training.build import load_data
from robustfusion.training.callbacks import BestModel
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import load_run, train


def _config(data: Path, out: Path, **changes: object) -> TrainConfig:
    base = dict(
        data=str(data),
        epochs=3,
        batch_size=16,
        lr=0.01,
        hidden_dim=16,
        feature_dim=16,
        out=str(out),
    )
    return TrainConfig(**{**base, **changes})


def test_train_writes_run_folder_and_selects_on_validation(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = train(_config(tiny_npz, out), progress=False)
    for name in ("config.yaml", "model.pt", "metrics.json", "timing.json", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["accuracy"] > 0.8  # the tiny data is easy
    assert set(metrics["mean_weight"]) == {"a", "b"}
    assert {"macro_f1", "ece", "unimodal_accuracy", "best_epoch", "val_accuracy", "seed"} <= set(
        metrics
    )
    assert "seconds" not in json.dumps(metrics)  # wall-clock only in timing.json
    # the selected epoch is the first one with the best validation accuracy in the log
    with (out / "logs" / "metrics.csv").open() as file:
        val = [(int(r["epoch"]), float(r["val_acc"])) for r in csv.DictReader(file) if r["val_acc"]]
    assert len(val) == 3
    best = max(acc for _, acc in val)
    assert metrics["best_epoch"] == min(e for e, acc in val if acc == best)
    assert abs(metrics["val_accuracy"] - best) < 1e-6
    # the saved config is complete and resolved
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert set(saved) == set(TrainConfig().to_dict())
    assert Path(saved["data"]).is_absolute()


def test_train_leaves_torch_global_flags_as_it_found_them(tiny_npz: Path, tmp_path: Path) -> None:
    before = torch.are_deterministic_algorithms_enabled()
    train(_config(tiny_npz, tmp_path / "run", epochs=1), progress=False)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_load_run_restores_the_selected_model(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(tiny_npz, out, epochs=2), progress=False)
    model, splits, config = load_run(out)
    assert not model.training and config.epochs == 2
    saved = torch.load(out / "model.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key])
    assert splits.info.modality_names == ("a", "b")


def test_same_config_and_seed_give_identical_metrics_json(tiny_npz: Path, tmp_path: Path) -> None:
    train(_config(tiny_npz, tmp_path / "one", method="modality_dropout"), progress=False)
    train(_config(tiny_npz, tmp_path / "two", method="modality_dropout"), progress=False)
    one = (tmp_path / "one" / "metrics.json").read_bytes()
    assert one == (tmp_path / "two" / "metrics.json").read_bytes()
    assert (tmp_path / "one" / "model.pt").read_bytes() == (
        tmp_path / "two" / "model.pt"
    ).read_bytes()
    train(_config(tiny_npz, tmp_path / "three", method="modality_dropout", seed=1), progress=False)
    assert one != (tmp_path / "three" / "metrics.json").read_bytes()


def test_config_file_reproduces_the_run(tiny_npz: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    args = ["train", "--data", str(tiny_npz), "--epochs", "2", "--batch-size", "16"]
    args += ["--hidden-dim", "16", "--feature-dim", "16", "--lr", "0.005", "--no-progress"]
    assert main([*args, "--out", str(first)]) == 0
    second = tmp_path / "second"
    assert (
        main(
            ["train", "--config", str(first / "config.yaml"), "--out", str(second), "--no-progress"]
        )
        == 0
    )
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    reproduced = yaml.safe_load((second / "config.yaml").read_text())
    assert reproduced["lr"] == 0.005 and reproduced["out"] == str(second.resolve())
    # flags override the config's values
    third = tmp_path / "third"
    cfg = str(first / "config.yaml")
    assert (
        main(["train", "--config", cfg, "--epochs", "1", "--out", str(third), "--no-progress"]) == 0
    )
    assert yaml.safe_load((third / "config.yaml").read_text())["epochs"] == 1


def test_best_model_keeps_the_earlier_epoch_on_ties() -> None:
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Linear(2, 1)

    holder, best = Holder(), BestModel()
    best.update(0, 0.5, holder)  # type: ignore[arg-type]
    best.update(1, 0.8, holder)  # type: ignore[arg-type]
    kept = {k: v.clone() for k, v in best.best_state.items()}
    with torch.no_grad():
        holder.model.weight.add_(1.0)
    best.update(2, 0.8, holder)  # type: ignore[arg-type]
    assert best.best_epoch == 1 and torch.equal(best.best_state["weight"], kept["weight"])
    restored = BestModel()
    restored.load_state_dict(best.state_dict())
    assert restored.best_epoch == 1 and restored.best_accuracy == 0.8


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_run_folder_is_replaced_only_on_request_and_only_once_the_new_run_is_done(
    tiny_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    train(_config(tiny_npz, out, epochs=1), progress=False)
    before = _files(out)
    with pytest.raises(RunFolderError, match="holds a finished run"):
        train(_config(tiny_npz, out, epochs=1, method="modality_dropout"), progress=False)
    assert _files(out) == before

    # an overwrite that fails mid-way (here: while training) leaves the old run as it was
    def broken(config: TrainConfig, workdir: Path, *args: object) -> dict:
        (workdir / "config.yaml").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_module, "_fit_and_test", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        train(_config(tiny_npz, out, method="modality_dropout"), overwrite=True, progress=False)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.npz"]  # no leftovers
    monkeypatch.undo()

    metrics = train(_config(tiny_npz, out, method="modality_dropout"), overwrite=True)
    assert metrics["method"] == "modality_dropout" and metrics["epochs"] == 3
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "modality_dropout" and saved["out"] == str(out.resolve())
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.npz"]


def test_an_interrupted_replacement_is_recovered_by_the_next_run(
    tiny_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(_config(tiny_npz, out, epochs=1), progress=False)
    before = _files(out)
    # killed between the two renames of a swap: the old run aside, the new one not yet in place
    aside = tmp_path / ".run.rf-old-abcd1234"
    aside.mkdir()
    out.rename(aside / "run")
    (tmp_path / ".run.rf-new-efgh5678").mkdir()
    with pytest.raises(RunFolderError, match="holds a finished run"):
        train(_config(tiny_npz, out, epochs=1), progress=False)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.npz"]


def test_resume_extends_a_finished_run_as_if_it_had_run_longer(
    tiny_npz: Path, tmp_path: Path
) -> None:
    short, long = tmp_path / "short", tmp_path / "long"
    train(_config(tiny_npz, short, epochs=2), progress=False)
    finished = _files(short)
    # resuming a finished run with its own epochs does nothing
    assert train(_config(tiny_npz, short, epochs=2), resume=True) == json.loads(
        finished["metrics.json"]
    )
    assert _files(short) == finished
    with pytest.raises(ConfigError, match="it has done 2 epochs"):
        train(_config(tiny_npz, short, epochs=1), resume=True)

    moved = tmp_path / "moved"  # a moved folder resumes: its saved out is not compared
    short.rename(moved)
    (moved / "eval-clean-all.json").write_text("{}")  # an evaluation of the 2-epoch model
    extended = train(_config(tiny_npz, moved, epochs=4), resume=True, progress=False)
    train(_config(tiny_npz, long, epochs=4), progress=False)
    # static fusion has no schedule that depends on the number of epochs: identical results
    assert (moved / "metrics.json").read_bytes() == (long / "metrics.json").read_bytes()
    assert (moved / "model.pt").read_bytes() == (long / "model.pt").read_bytes()
    assert extended["epochs"] == 4
    assert yaml.safe_load((moved / "config.yaml").read_text())["out"] == str(moved.resolve())
    with (moved / "logs" / "metrics.csv").open() as file:
        assert {int(r["epoch"]) for r in csv.DictReader(file)} == {0, 1, 2, 3}
    assert json.loads((moved / "timing.json").read_text())["mode"] == "extend"
    assert not (moved / "eval-clean-all.json").exists()  # it described a model now replaced


def test_modalities_keeps_a_subset_in_the_dataset_order(
    make_npz: Callable[..., Path], tmp_path: Path
) -> None:
    import numpy as np

    data = make_npz("three.npz", c=np.ones((90, 2), np.float32))
    config = _config(data, tmp_path / "run", epochs=1, modalities=["c", "a"])
    splits = load_data(config)
    assert splits.info.modality_names == ("a", "c")
    assert set(splits.train[0]["inputs"]) == {"a", "c"}
    assert splits.train.__getitems__([0, 1]).modalities == ("a", "c")
    metrics = train(config, progress=False)
    assert set(metrics["mean_weight"]) == {"a", "c"}
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["modalities"] == [
        "c",
        "a",
    ]
    model, splits, _ = load_run(tmp_path / "run")  # evaluation sees the same modalities
    assert tuple(model.encoders) == ("a", "c") and splits.info.modality_names == ("a", "c")


def test_dataset_notes_are_logged_once(
    tiny_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from robustfusion.training import build

    real = build.load_dataset

    def noted(*args: object, **kwargs: object) -> object:
        splits = real(*args, **kwargs)  # type: ignore[arg-type]
        extra = {**splits.info.extra, "notes": ["image value range guessed as 0-16"]}
        splits.info = dataclasses.replace(splits.info, extra=extra)
        return splits

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    monkeypatch.setattr(build, "load_dataset", noted)
    monkeypatch.setattr(build, "_NOTES_SHOWN", set())
    collect = Collect()
    logger = logging.getLogger("robustfusion")
    logger.addHandler(collect)
    try:
        load_data(_config(tiny_npz, tmp_path / "r"))
        load_data(_config(tiny_npz, tmp_path / "r"))
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["image value range guessed as 0-16"]


def test_selection_last_keeps_the_last_epoch(tiny_npz: Path, tmp_path: Path) -> None:
    metrics = train(
        _config(tiny_npz, tmp_path / "last", epochs=4, selection="last"), progress=False
    )
    assert metrics["best_epoch"] == 3
    with pytest.raises(ConfigError, match="unknown selection"):
        _config(tiny_npz, tmp_path / "bad", selection="first").resolved()
