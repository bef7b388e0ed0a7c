"""The command line: listings, and one test per kind of bad input (exit 2, one line, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from robustfusion.cli import discover_commands, main


def _fails_cleanly(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> str:
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    return lines[0]


def _train(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_commands_are_discovered() -> None:
    names = {module.NAME for module in discover_commands()}
    assert {"train", "evaluate", "datasets", "methods", "prepare"} <= names


def test_datasets_and_methods_list_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert {"static", "unimodal"} <= set(names) and names == sorted(names)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # every name has a description
    assert main(["datasets"]) == 0
    assert {"mfeat", "npz"} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}


def test_argparse_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["train", "--epochs", "many"], "invalid int value")
    _fails_cleanly(capsys, ["nonsense"], "invalid choice")
    _fails_cleanly(capsys, [], "required")


def test_wrong_shapes(make_npz: Callable[..., Path], tmp_path: Path, capsys) -> None:
    bad = make_npz("bad.npz", b=np.zeros((50, 4), np.float32))  # y has 90 samples
    _fails_cleanly(capsys, _train(bad, tmp_path / "r"), "first axis must be the samples")


def test_nan_or_inf(make_npz: Callable[..., Path], tmp_path: Path, capsys) -> None:
    a = np.ones((90, 6), np.float32)
    a[5, 2] = np.inf
    _fails_cleanly(capsys, _train(make_npz("inf.npz", a=a), tmp_path / "r"), "NaN or Inf")


def test_unknown_dataset_name(tmp_path: Path, capsys) -> None:
    args = ["train", "--dataset", "mfaet", "--out", str(tmp_path / "r")]
    line = _fails_cleanly(capsys, args, "unknown dataset 'mfaet'")
    assert "did you mean 'mfeat'" in line


def test_unknown_method_name(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    line = _fails_cleanly(
        capsys, _train(tiny_npz, tmp_path / "r", "--method", "statc"), "unknown method"
    )
    assert "did you mean 'static'" in line
    assert not (tmp_path / "r").exists()  # nothing written for a rejected run


def test_unknown_method_option(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    args = _train(tiny_npz, tmp_path / "r", "--method-option", "static.gamma=4")
    _fails_cleanly(capsys, args, "bad options for method 'static'")
    _fails_cleanly(
        capsys, _train(tiny_npz, tmp_path / "r", "--method-option", "gamma"), "NAME.KEY=VALUE"
    )


def test_npz_without_y(tmp_path: Path, capsys) -> None:
    path = tmp_path / "noy.npz"
    np.savez(path, a=np.zeros((10, 3), np.float32))
    _fails_cleanly(capsys, _train(path, tmp_path / "r"), "has no array 'y'")


def test_npz_with_pickled_objects(make_npz: Callable[..., Path], tmp_path: Path, capsys) -> None:
    objects = np.empty(90, dtype=object)
    objects[:] = [{"x": i} for i in range(90)]
    path = make_npz("pickled.npz", c=objects)
    _fails_cleanly(capsys, _train(path, tmp_path / "r"), "pickled")


def test_missing_data_file(tmp_path: Path, capsys) -> None:
    _fails_cleanly(capsys, _train(tmp_path / "absent.npz", tmp_path / "r"), "does not exist")


def test_sample_with_every_modality_missing(
    make_npz: Callable[..., Path], tmp_path: Path, capsys
) -> None:
    gone = np.ones(90, bool)
    gone[7] = False
    path = make_npz("gone.npz", present_a=gone, present_b=gone)
    _fails_cleanly(capsys, _train(path, tmp_path / "r"), "every modality missing")


def test_truncated_checkpoint(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_train(tiny_npz, run)) == 0
    capsys.readouterr()
    model = run / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    line = _fails_cleanly(capsys, ["evaluate", str(run)], "corrupted or truncated")
    assert "robustfusion train" in line


def test_evaluate_bad_arguments(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_train(tiny_npz, run)) == 0
    capsys.readouterr()
    _fails_cleanly(capsys, ["evaluate", str(tmp_path / "nothing")], "is not a training run")
    _fails_cleanly(capsys, ["evaluate", str(run), "--corruption", "fog"], "unknown corruption")
    _fails_cleanly(
        capsys,
        ["evaluate", str(run), "--corruption", "gaussian", "--severities", "a,b"],
        "--severities",
    )
    _fails_cleanly(
        capsys,
        ["evaluate", str(run), "--corruption", "gaussian", "--target", "c"],
        "unknown corruption target 'c'",
    )


def test_module_entry_point_exit_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustfusion",
            "train",
            "--data",
            str(tmp_path / "x.npz"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")


def test_unknown_fusion_encoder_and_modality(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    _fails_cleanly(capsys, _train(tiny_npz, out, "--fusion", "bogus"), "unknown fusion 'bogus'")
    _fails_cleanly(capsys, _train(tiny_npz, out, "--encoder", "a=bogus"), "unknown encoder 'bogus'")
    _fails_cleanly(capsys, _train(tiny_npz, out, "--encoder", "c=mlp"), "unknown modality 'c'")


def test_prepare_unknown_step_or_option(capsys, tmp_path: Path) -> None:
    _fails_cleanly(capsys, ["prepare", "nope"], "unknown prepare step 'nope'")
    args = ["prepare", "avdigits", "--option", "bogus=1", "--out", str(tmp_path / "av")]
    _fails_cleanly(capsys, args, "bad options for prepare 'avdigits'")


def test_resume_with_other_settings_is_refused(tiny_npz: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_train(tiny_npz, run)) == 0
    capsys.readouterr()
    args = ["train", "--resume", "--out", str(run), "--epochs", "5", "--no-progress"]
    _fails_cleanly(capsys, args, "cannot resume")
