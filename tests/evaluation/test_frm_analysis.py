"""Tests of the FRM analysis (evaluation/frm_analysis.py) and the ``robustfusion frm`` command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from robustfusion.cli import main
from robustfusion.errors import DataError
from robustfusion.evaluation.frm_analysis import dominant_modality, epoch_means, read_frm_log


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
