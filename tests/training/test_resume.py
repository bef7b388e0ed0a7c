from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustfusion.cli import main
from robustfusion.training.callbacks import EXIT_AFTER_EPOCH_ENV
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import PAUSE_AFTER_EPOCH_ENV, load_run, train


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

    assert (tmp_path / ".cut.lock").is_file()  # the killed process could not remove its lock
    resumed = _run_cli(["train", "--resume", "--out", str(cut), "--no-progress"], {})
    assert resumed.returncode == 0, resumed.stderr
    assert "note: took over the stale lock of pid" in resumed.stderr
    assert not (tmp_path / ".cut.lock").exists()
    assert (cut / "metrics.json").read_bytes() == (whole / "metrics.json").read_bytes()
    # the log keeps the epochs before the interruption
    with (cut / "logs" / "metrics.csv").open() as file:
        epochs = {int(row["epoch"]) for row in csv.DictReader(file)}
    assert epochs == {0, 1, 2, 3}


SETTINGS = dict(epochs=4, batch_size=16, lr=0.01, hidden_dim=16, feature_dim=16)


def _default_ctrl_c() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt, as in a terminal. A test suite started as a
    background job (``cmd &`` in a script: how CI may start it) inherits SIGINT ignored, and a
    Python started with SIGINT ignored keeps ignoring it: the Ctrl-C test then waited out its
    timeout under CI while passing in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_paused(args: list[str], marker: Path, epoch: int) -> subprocess.Popen[str]:
    """Start ``robustfusion ARGS`` that pauses after ``epoch`` (its checkpoint written) until
    ``marker`` is deleted; return once it is paused."""
    process = subprocess.Popen(
        [sys.executable, "-m", "robustfusion", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", PAUSE_AFTER_EPOCH_ENV: f"{epoch}:{marker}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_ctrl_c,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the training did not pause: {process.communicate()[1]}")
        time.sleep(0.05)
    return process


@pytest.mark.slow
def test_ctrl_c_says_how_far_it_got_and_resume_reproduces_the_run(
    tiny_npz: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    config = dict(data=str(tiny_npz), method="modality_dropout", **SETTINGS)
    train(TrainConfig(**config, out=str(whole)), progress=False)  # type: ignore[arg-type]

    cut = tmp_path / "cut"
    TrainConfig(**config, out=str(cut)).to_yaml(tmp_path / "cut.yaml")  # type: ignore[arg-type]
    args = ["train", "--config", str(tmp_path / "cut.yaml"), "--no-progress"]
    process = _start_paused(args, tmp_path / "paused", epoch=1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip() == (
        f"interrupted after epoch 2; resume with: robustfusion train --resume --out {cut}"
    )
    assert out == ""
    assert (cut / "checkpoints" / "last.ckpt").is_file() and not (cut / "metrics.json").exists()
    assert not (tmp_path / ".cut.lock").exists()

    assert main(["train", "--resume", "--out", str(cut), "--no-progress"]) == 0
    assert (cut / "metrics.json").read_bytes() == (whole / "metrics.json").read_bytes()
    assert (cut / "model.pt").read_bytes() == (whole / "model.pt").read_bytes()


@pytest.mark.slow
def test_two_trainings_into_one_folder_one_refuses_the_other_finishes_intact(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    first = ["train", "--data", str(tiny_npz), "--method", "static", "--no-progress"]
    first += [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    marker = tmp_path / "paused"
    process = _start_paused([*first, "--out", str(run)], marker, epoch=0)
    try:
        for extra in ([], ["--overwrite"], ["--resume"]):
            second = ["train", "--data", str(tiny_npz), "--method", "modality_dropout"]
            status = main([*second, "--epochs", "1", "--out", str(run), "--no-progress", *extra])
            line = capsys.readouterr().err.strip()
            assert status == 2
            assert line.startswith(f"error: {run} is in use by pid {process.pid} on host"), line
            assert "robustfusion train --data" in line  # the holder's command
    finally:
        marker.unlink()
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err

    # the first training's run is whole: settings, weights and metrics all of one run
    reference = tmp_path / "reference"
    train(
        TrainConfig(data=str(tiny_npz), method="static", out=str(reference), **SETTINGS),  # type: ignore[arg-type]
        progress=False,
    )
    assert (run / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()
    assert (run / "model.pt").read_bytes() == (reference / "model.pt").read_bytes()
    model, _, config = load_run(run)
    assert config.method == "static" and type(model.method).__name__ == "StaticFusion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference", "run", "tiny.npz"]
