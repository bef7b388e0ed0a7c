from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from robustfusion.cli import main
from robustfusion.errors import UnknownNameError
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


def test_a_fresh_run_removes_results_of_an_earlier_one(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(tiny_npz, out, epochs=1), progress=False)
    with pytest.raises(UnknownNameError):  # a second, fresh run that fails before training
        train(_config(tiny_npz, out, epochs=1, method="no_such_method"), progress=False)
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()
    assert not (out / "checkpoints" / "last.ckpt").exists()
