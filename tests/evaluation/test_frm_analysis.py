"""Tests of the FRM analysis (evaluation/frm_analysis.py) and the ``robustfusion frm`` command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from robustfusion.cli import main
from robustfusion.errors import DataError
from robustfusion.evaluation.frm_analysis import (
    dominant_modality,
    epoch_means,
    frm_shapes,
    frm_spread,
    frm_warnings,
    read_frm_log,
)


def _write_log(run: Path) -> None:
    """A Lightning-style CSV: step rows with MWAM columns, epoch rows without."""
    (run / "logs").mkdir(parents=True)
    columns = [
        "epoch",
        "method/mwam.T.image",
        "method/mwam.K.image",
        "method/mwam.frm.image",
        "method/mwam.T.audio",
        "method/mwam.K.audio",
        "method/mwam.frm.audio",
        "step",
        "val_acc",
    ]
    rows = []
    for step in range(6):
        epoch = step // 3
        t_image = 0.5 + 0.3 * step  # the image grows dominant
        rows.append(
            [
                epoch,
                t_image,
                1.5 - 0.1 * step,
                10.0 * t_image,
                2 - t_image,
                0.9 + 0.1 * step,
                10.0 * (2 - t_image),
                step,
                "",
            ]
        )
        if step % 3 == 2:
            rows.append([epoch, "", "", "", "", "", "", step, 0.9])
    with (run / "logs" / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def test_read_log_epoch_means_and_dominant(tmp_path: Path) -> None:
    _write_log(tmp_path)
    log = read_frm_log(tmp_path)
    assert log.modalities == ("image", "audio")
    assert log.steps == [0, 1, 2, 3, 4, 5] and log.epochs == [0, 0, 0, 1, 1, 1]
    means = epoch_means(log)
    assert means[1]["T"]["image"] == pytest.approx(0.5 + 0.3 * 4)
    assert means[0]["K"]["audio"] == pytest.approx(1.0)
    dominant, ratios = dominant_modality(log)
    assert dominant == "image" and ratios["audio"] == pytest.approx(2 - 1.7)


def test_frm_command_plots_and_names_the_dominant_modality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_log(tmp_path)
    assert main(["frm", str(tmp_path), "--out", str(tmp_path / "figs" / "frm.png")]) == 0
    out = capsys.readouterr().out
    assert "dominant modality: image" in out
    assert (tmp_path / "figs" / "frm.png").stat().st_size > 1000


def test_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frm", str(tmp_path / "nothing")]) == 2
    assert "--method mwam" in capsys.readouterr().err
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text("epoch,step,train_loss\n0,0,1.0\n")
    with pytest.raises(DataError, match="no MWAM statistics"):
        read_frm_log(tmp_path)


def test_end_to_end_on_a_trained_mwam_run(tmp_path: Path) -> None:
    """Train MWAM for one epoch on mfeat with our trainer; the log has FRM/T/K per view."""
    from robustfusion.training.config import TrainConfig
    from robustfusion.training.run import train

    torch.set_num_threads(1)
    config = TrainConfig(
        dataset="mfeat",
        method="mwam",
        epochs=1,
        batch_size=200,
        hidden_dim=16,
        feature_dim=16,
        out=str(tmp_path / "run"),
    )
    train(config, progress=False)
    log = read_frm_log(tmp_path / "run")
    assert set(log.modalities) == {"fou", "fac", "kar", "pix", "zer", "mor"}
    assert len(log.steps) == 6  # 1200 training samples / 200
    for m in log.modalities:
        assert all(0.5 <= k <= 1.5 for k in log.series("K", m))
        assert all(f > 0 for f in log.series("frm", m))
    assert dominant_modality(log)[0] in log.modalities
    warnings = frm_warnings(log)
    vectors = [w for w in warnings if "computed on vectors" in w]
    assert len(vectors) == 1 and all(m in vectors[0] for m in log.modalities)
    assert "outside the paper's domain" in vectors[0]


def _write_constant_log(run: Path, shapes: dict[str, tuple[int, int]]) -> None:
    """Two epochs of FRM that only fluctuates with the batch (the raw-input case)."""
    (run / "logs").mkdir(parents=True)
    names = list(shapes)
    columns = ["epoch", "step"]
    for m in names:
        columns += [f"method/mwam.{q}.{m}" for q in ("frm", "T", "K", "h", "w")]
    with (run / "logs" / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for step in range(8):
            row: list[object] = [step // 4, step]
            for i, m in enumerate(names):
                frm = (10.0 if i == 0 else 2.0) * (1 + 0.01 * (-1) ** step)
                row += [frm, frm / 6, 1.0, *shapes[m]]
            writer.writerow(row)


def test_constant_frm_and_maps_of_different_sizes_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_constant_log(tmp_path, {"audio": (40, 32), "image": (8, 8)})
    log = read_frm_log(tmp_path)
    assert frm_shapes(log) == {"audio": (40, 32), "image": (8, 8)}
    assert frm_spread(log) == pytest.approx(0.0)
    warnings = frm_warnings(log)
    assert len(warnings) == 2
    assert "different sizes (audio 40x32, image 8x8)" in warnings[0]
    assert "FRM is constant over training" in warnings[1]
    assert main(["frm", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: ") == 2
    assert "dominant modality by FRM: audio" in captured.out
    assert "not evidence of what the model relies on" in captured.out


def test_equal_maps_that_change_over_training_raise_no_warning(tmp_path: Path) -> None:
    _write_log(tmp_path)  # FRM grows with T: it moves over training
    log = read_frm_log(tmp_path)
    assert frm_shapes(log) == {} and frm_spread(log) > 0.5
    assert frm_warnings(log) == []
    other = tmp_path / "same_size"
    _write_constant_log(other, {"rgb": (16, 16), "depth": (16, 16)})
    only = frm_warnings(read_frm_log(other))
    assert len(only) == 1 and "constant" in only[0]


def test_one_epoch_compares_the_halves_and_short_logs_are_not_judged() -> None:
    from robustfusion.evaluation.frm_analysis import FrmLog

    def log_of(values: list[float]) -> FrmLog:
        n = len(values)
        return FrmLog(
            steps=list(range(n)),
            epochs=[0] * n,
            modalities=("a",),
            values={"frm": {"a": values}, "T": {"a": [1.0] * n}, "K": {"a": [1.0] * n}},
        )

    assert frm_spread(log_of([1.0, 1.0, 2.0, 2.0])) == pytest.approx(1 / 1.5)
    assert frm_spread(log_of([1.0, 1.0, 1.0])) is None
