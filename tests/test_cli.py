"""The command line: listings, and one test per kind of bad input (exit 2, one line, no traceback)."""

from __future__ import annotations

import argparse
import json
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
    _fails_cleanly(capsys, ["train", "--epochs", "many"], "--epochs accepts an integer")
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
    args = ["train", "--resume", "--out", str(run), "--lr", "0.5", "--no-progress"]
    line = _fails_cleanly(capsys, args, "cannot resume")
    assert "lr 0.001 -> 0.5" in line


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from robustfusion.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_shows_every_default() -> None:
    for name, parser in _subcommands().items():
        for action in parser._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            if isinstance(action, argparse._StoreTrueAction | argparse._HelpAction):
                continue  # a switch: off unless given
            text = f"{name} {action.option_strings[0]}: {action.help}"
            assert "default" in action.help or action.required, text


def test_train_and_benchmark_share_one_definition_per_setting() -> None:
    commands = _subcommands()

    def helps(name: str) -> dict[str, str]:
        return {a.option_strings[0]: a.help for a in commands[name]._actions if a.option_strings}

    train, bench = helps("train"), helps("benchmark")
    shared = set(train) & set(bench)
    assert {"--devices", "--precision", "--strategy", "--modalities", "--optimizer"} <= shared
    assert all(train[flag] == bench[flag] for flag in shared - {"--out", "--config", "--no-progress",
                                                                "--print-config", "-h"})  # fmt: skip
    assert "the method's recipe, else 0.001" in train["--lr"]


def test_methods_name_prints_options_paper_and_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "udml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("udml: ") and "follows: UDML" in out
    assert "options (--method-option udml.KEY=VALUE):" in out
    assert "  gamma" in out and "4.0  (from preset 'default')" in out
    assert "presets (preset=NAME" in out and "  paper: " in out
    assert "evaluate --weights learned|uniform|oracle" in out or "weights" in out
    assert "lr" in out and "(global default)" in out or "(method's recipe)" in out
    assert main(["methods", "mwam+tmc"]) == 0
    out = capsys.readouterr().out
    assert "mwam: " in out and "\n\ntmc: " in out and "wraps another method" in out


def test_print_config_prints_the_resolved_settings_and_writes_nothing(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    args = ["train", "--data", str(tiny_npz), "--lr", "0.5", "--modalities", "b", "--print-config"]
    assert main(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["lr"] == 0.5 and printed["modalities"] == ["b"] and printed["out"] is None
    assert printed["optimizer"] == "adam" and Path(printed["data"]).is_absolute()
    bench = ["benchmark", "--data", str(tiny_npz), "--methods", "static,tmc", "--seeds", "3"]
    assert main([*bench, "--out", str(tmp_path / "bench"), "--print-config"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["method"] for d in documents] == ["static", "tmc"]
    assert all(d["seed"] == 3 for d in documents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.npz"]  # nothing written


def test_benchmark_flags_reach_its_config(tiny_npz: Path, tmp_path: Path) -> None:
    from robustfusion.cli import build_parser
    from robustfusion.commands.benchmark import config_from_args

    args = build_parser().parse_args(
        ["benchmark", "--data", str(tiny_npz), "--methods", "static,tmc", "--out", str(tmp_path),
         "--jobs", "3", "--weight-controls", "--devices", "2", "--precision", "bf16-mixed",
         "--strategy", "ddp", "--modalities", "a", "--lr", "0.5", "--num-workers", "1"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.jobs == 3 and config.weight_controls
    base = config.base
    assert (base.devices, base.precision, base.strategy) == (2, "bf16-mixed", "ddp")
    assert base.modalities == ["a"] and base.lr == 0.5 and base.num_workers == 1


def test_evaluate_with_uniform_weights_writes_its_own_file(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(_train(tiny_npz, run, "--method", "pe")) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--weights", "uniform"]) == 0
    out = capsys.readouterr().out
    assert "uniform weights" in out.splitlines()[0]
    report = json.loads((run / "eval-clean-all-uniform.json").read_text())
    assert report["weights"] == "uniform" and report["method"] == "pe"
    assert not (run / "eval-clean-all.json").exists()  # the learned weights' file is another


def test_closed_stdout_exits_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "robustfusion", "methods"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written: `| head -0`
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and err == "", err  # no BrokenPipeError traceback
