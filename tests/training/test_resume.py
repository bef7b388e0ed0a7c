from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustfusion.training.callbacks import EXIT_AFTER_EPOCH_ENV
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import train


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robustfusion", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_killed_run_resumed_ends_with_the_same_metrics(tiny_npz: Path, tmp_path: Path) -> None:
    # modality_dropout draws random numbers every step, so any RNG drift would show
    settings = dict(
        data=str(tiny_npz),
        method="modality_dropout",
        epochs=4,
        batch_size=16,
        lr=0.01,
        hidden_dim=16,
        feature_dim=16,
    )
    whole = tmp_path / "whole"
    train(TrainConfig(**settings, out=str(whole)), progress=False)  # type: ignore[arg-type]

    cut = tmp_path / "cut"
    TrainConfig(**settings, out=str(cut)).to_yaml(tmp_path / "cut.yaml")  # type: ignore[arg-type]
    args = ["train", "--config", str(tmp_path / "cut.yaml"), "--no-progress"]
    killed = _run_cli(args, {EXIT_AFTER_EPOCH_ENV: "1"})
    assert killed.returncode == 17, killed.stderr  # the process died right after epoch 1
    assert (cut / "checkpoints" / "last.ckpt").is_file()
    assert not (cut / "metrics.json").exists()

    resumed = _run_cli(["train", "--resume", "--out", str(cut), "--no-progress"], {})
    assert resumed.returncode == 0, resumed.stderr
    assert (cut / "metrics.json").read_bytes() == (whole / "metrics.json").read_bytes()
    # the log keeps the epochs before the interruption
    with (cut / "logs" / "metrics.csv").open() as file:
        epochs = {int(row["epoch"]) for row in csv.DictReader(file)}
    assert epochs == {0, 1, 2, 3}
