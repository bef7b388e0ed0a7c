from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustfusion.cli import main
from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.evaluation.sweep import evaluate_run
from robustfusion.registry import METHODS
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import load_run, train

SEVERITIES = [0.0, 1.0, 2.0, 4.0, 8.0]


@pytest.fixture(scope="module")
def mfeat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mfeat") / "run"
    train(TrainConfig(dataset="mfeat", epochs=3, seed=0, out=str(out)), progress=False)
    return out


def test_gaussian_noise_on_all_views_lowers_accuracy(mfeat_run: Path) -> None:
    report = evaluate_run(mfeat_run, "gaussian", SEVERITIES, "all", seed=0)
    assert [r["severity"] for r in report["results"]] == SEVERITIES
    accuracies = [r["accuracy"] for r in report["results"]]
    clean = json.loads((mfeat_run / "metrics.json").read_text())["accuracy"]
    assert accuracies[0] == clean  # severity 0 is the clean test set
    assert all(b <= a + 0.01 for a, b in zip(accuracies, accuracies[1:], strict=False))
    assert accuracies[-1] < accuracies[0] - 0.3
    eces = [r["ece"] for r in report["results"]]
    assert eces[-1] > eces[0]  # noisy inputs, over-confident model
    assert report["corruption"] == "gaussian" and report["dataset"] == "mfeat"


def test_evaluate_command_writes_every_severity(mfeat_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    args = ["evaluate", str(mfeat_run), "--corruption", "gaussian", "--severities", "0,2,8"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [r["severity"] for r in report["results"]] == [0.0, 2.0, 8.0]
    assert "accuracy" in printed and len(printed.strip().splitlines()) == 2 + 3 + 1
    # the same protocol twice gives the same numbers
    assert main([*args, "--out", str(tmp_path / "again.json")]) == 0
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()


def test_missing_views_keep_weights_on_present_ones(mfeat_run: Path) -> None:
    model, splits, _ = load_run(mfeat_run)
    metrics = evaluate_model(
        model, splits.test, splits.info, corruption="missing", severity=0.5, target="all", seed=0
    )
    weights = metrics["mean_weight"]
    assert set(weights) == set(splits.info.modality_names)
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert metrics["num_samples"] == len(splits.test)


def test_unimodal_accuracy_is_reported_for_unimodal_heads(tiny_npz: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=str(tiny_npz),
        method="unimodal",
        method_options={"unimodal": {"modality": "b"}},
        epochs=2,
        lr=0.01,
        batch_size=16,
        out=str(tmp_path / "run"),
    )
    metrics = train(config, progress=False)
    assert set(metrics["unimodal_accuracy"]) == {"b"}
    assert metrics["unimodal_accuracy"]["b"] == metrics["accuracy"]  # the only head is the output
    assert metrics["mean_weight"] == {"a": 0.0, "b": 1.0}


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_and_reloads_to_the_same_metrics(
    method: str, tiny_npz: Path, tmp_path: Path
) -> None:
    """The trainer drives every registered method, and ``evaluate`` on the reloaded run gives
    exactly the numbers of ``metrics.json`` (no state lost between training and loading)."""
    out = tmp_path / method
    config = TrainConfig(
        data=str(tiny_npz), method=method, epochs=2, lr=0.01, batch_size=16, out=str(out)
    )
    metrics = train(config, progress=False)
    clean = evaluate_run(out, None, [0.0])["results"][0]
    for key in ("accuracy", "macro_f1", "ece", "mean_weight", "unimodal_accuracy"):
        assert clean[key] == metrics[key], key
    assert sum(metrics["mean_weight"].values()) == pytest.approx(1.0, abs=1e-5)


def test_the_pass_size_cap_does_not_change_the_metrics(
    mfeat_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustfusion.evaluation import evaluate as evaluate_module
    from robustfusion.evaluation.grids import corrupt_level

    model, splits, _ = load_run(mfeat_run)
    batches = evaluate_module.test_batches(splits.test, 64)
    transforms = [None] + [
        (lambda b, s=s: corrupt_level(b, splits.info, "gaussian", s, "all", 0)) for s in (1.0, 4.0)
    ]
    wide = evaluate_module.evaluate_many(model, batches, splits.info, transforms)
    monkeypatch.setattr(evaluate_module, "MAX_VALUES_PER_PASS", 1)  # one batch per pass
    narrow = evaluate_module.evaluate_many(model, batches, splits.info, transforms)
    for a, b in zip(wide, narrow, strict=True):
        assert a["accuracy"] == b["accuracy"]
        assert a["num_samples"] == b["num_samples"]
        assert a["ece"] == pytest.approx(b["ece"], abs=1e-6)
