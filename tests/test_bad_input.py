"""Every user mistake exits 2 with one line naming the problem and the fix, and leaves what the
user has byte-identical: a finished run, a run with a damaged checkpoint, a folder of other files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from robustfusion.cli import main
from robustfusion.lock import FolderLock


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with: ``tiny.npz``; ``run`` (a finished 2-epoch run); ``moved`` (a finished run
    whose ``gone.npz`` was moved to ``found.npz``); ``damaged`` (a finished run whose ``model.pt``
    was cut short); ``trunc`` (an unfinished
    copy, killed before its test, whose ``last.ckpt`` was then cut in half); ``foreign`` (a user's files); ``empty`` (an empty folder);
    ``a_file``; ``bad.yaml`` (not YAML); ``unknown.yaml`` (an unknown setting); ``x.npy``."""
    root = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    a = rng.normal(size=(90, 6)).astype(np.float32) + y[:, None] * 3.0
    b = rng.normal(size=(90, 4)).astype(np.float32) - y[:, None] * 2.0
    np.savez(root / "tiny.npz", y=y, a=a, b=b)
    args = ["train", "--data", str(root / "tiny.npz"), "--epochs", "2", "--batch-size", "16"]
    assert main([*args, "--out", str(root / "run"), "--no-progress"]) == 0
    shutil.copytree(root / "run", root / "trunc")
    (root / "trunc" / "metrics.json").unlink()
    (root / "trunc" / "model.pt").unlink()
    ckpt = root / "trunc" / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.tex").write_text("my thesis")
    (root / "empty").mkdir()
    (root / "a_file").write_text("not a folder")
    shutil.copy(root / "tiny.npz", root / "gone.npz")
    assert main([*args[:2], str(root / "gone.npz"), *args[3:], "--out", str(root / "moved"),
                 "--no-progress"]) == 0  # fmt: skip
    (root / "gone.npz").rename(root / "found.npz")
    shutil.copytree(root / "run", root / "damaged")
    model = root / "damaged" / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    (root / "bad.yaml").write_text("epochs: [1,\n")
    (root / "unknown.yaml").write_text("learning_rate: 0.1\n")
    np.save(root / "x.npy", np.zeros((5, 3)))
    return root


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None), hidden ones (locks, temporaries) included."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _train(place: Path, out: str, *extra: str) -> list[str]:
    return ["train", "--data", str(place / "tiny.npz"), "--out", str(place / out), *extra]


#: One more device process than this machine lets us use.
TOO_MANY_DEVICES = str(len(os.sched_getaffinity(0)) + 1)

# (arguments, a part of the one-line message); {p} is the folder of the fixture
MISTAKES: list[tuple[list[str], str]] = [
    # the findings of issue 22's pass as a new user
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/new", "--method", "udml",
      "--method-option", "udml.gamma=abc"], "udml.gamma accepts a finite number"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/new", "--seed", "-1"],
     "--seed accepts an integer from 0"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/new", "--method-option", "udml.gamma=4"],
     "which this run does not use"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/new", "--devices", TOO_MANY_DEVICES],
     f"--devices {TOO_MANY_DEVICES} asks for"),
    (["evaluate", "{p}/run", "--severities", "-1,2", "--corruption", "gaussian"],
     "--severities accepts a comma-separated list"),
    (["evaluate", "{p}/run", "--severities", "0,,1", "--corruption", "gaussian"],
     "no empty item"),
    (["evaluate", "{p}/run", "--weights", "oracle"], "it would equal --weights uniform"),
    (["evaluate", "{p}/run", "--weights", "oracle", "--corruption", "gaussian"],
     "--target each or a modality name"),
    (["evaluate", "{p}/moved"], "give its new place with robustfusion evaluate"),
    (["evaluate", "{p}/damaged"], "--overwrite (the damaged run stays"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "udml:gamam=3", "--out", "{p}/bench"],
     "unexpected keyword argument 'gamam'"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "static", "--out", "{p}/run"],
     "holds a training run, not a benchmark"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "static", "--out", "{p}/foreign"],
     "holds other files"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "static", "--out", "{p}/bench",
      "--method-option", "udml.gamma=4"], "which no label of --methods runs"),
    # a run folder is refused unless --resume or --overwrite is given
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run"], "holds a finished run"),
    (["train", "--data", "{p}/tiny.npz", "--method", "tmc", "--out", "{p}/run"], "--overwrite"),
    (["train", "--config", "{p}/run/config.yaml"], "holds a finished run"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/foreign"], "holds no run"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/foreign", "--overwrite"], "holds no run"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/a_file"], "is a file, not a folder"),
    # hardware this machine lacks, checked before anything is written
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--accelerator", "gpu"],
     "--accelerator gpu cannot run here"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--accelerator", "mps"],
     "--accelerator mps cannot run here"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--accelerator", "tpu"],
     "cannot run here"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--precision", "13"],
     "--precision 13 cannot run here"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--devices", "abc"],
     "--devices accepts a count from 1 to 1024"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--devices", "0"],
     "--devices accepts a count from 1 to 1024"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--strategy", "bogus"],
     "--strategy bogus cannot run here"),
    # resume mistakes
    (["train", "--resume", "--out", "{p}/trunc"], "corrupted or truncated"),
    (["train", "--resume", "--epochs", "3", "--out", "{p}/trunc"], "corrupted or truncated"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/trunc"], "holds an unfinished run"),
    (["train", "--resume", "--out", "{p}/empty"], "holds no run to resume"),
    (["train", "--resume", "--out", "{p}/run", "--epochs", "1"], "it has done 2 epochs"),
    (["train", "--resume", "--out", "{p}/run", "--lr", "0.5"], "lr 0.001 -> 0.5"),
    (["train", "--resume", "--overwrite", "--out", "{p}/run"], "exclude each other"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--resume", "--config", "{p}/run/config.yaml", "--method", "tmc", "--out", "{p}/run"],
     "cannot resume"),
    # data and settings
    (["train", "--data", "{p}/x.npy", "--out", "{p}/run", "--overwrite"], "expects an .npz file"),
    (["train", "--data", "{p}/absent.npz", "--out", "{p}/run", "--overwrite"], "does not exist"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--epochs", "0"],
     "--epochs accepts an integer from 1 to 100000, got '0'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--epochs", "many"],
     "--epochs accepts an integer from 1 to 100000, got 'many'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--batch-size", "-1"],
     "--batch-size accepts an integer from 1"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--lr", "-1"],
     "--lr accepts a finite number > 0"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--optimizer", "lion"],
     "--optimizer accepts one of adam, adamw, sgd, got 'lion'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite",
      "--gradient-clip-val", "-1"], "--gradient-clip-val accepts a finite number >= 0"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--num-workers", "-1"],
     "--num-workers accepts an integer from 0"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--modalities", "a,zz"],
     "unknown modality 'zz'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--modalities", ","],
     "--modalities accepts a comma-separated list of names"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--method", "statc"],
     "did you mean 'static'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite",
      "--method-option", "static.gamma=4"], "bad options for method 'static'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--fusion", "bogus"],
     "unknown fusion 'bogus'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite", "--encoder", "c=mlp"],
     "unknown modality 'c'"),
    (["train", "--data", "{p}/tiny.npz", "--out", "{p}/run", "--overwrite",
      "--dataset-option", "bogus=1"], "has no option 'bogus'"),
    (["train", "--config", "{p}/absent.yaml", "--out", "{p}/run"], "does not exist"),
    (["train", "--config", "{p}/bad.yaml", "--out", "{p}/run"], "not valid YAML"),
    (["train", "--config", "{p}/unknown.yaml", "--out", "{p}/run"], "unknown setting(s)"),
    # evaluate and the other commands
    (["evaluate", "{p}/run", "--weights", "best"], "--weights accepts one of learned, uniform, oracle"),
    (["evaluate", "{p}/run", "--corruption", "fog"], "unknown corruption 'fog'"),
    (["evaluate", "{p}/run", "--out", "{p}/run/config.yaml"], "would replace a file of the run"),
    (["evaluate", "{p}/run", "--batch-size", "0"], "--batch-size accepts an integer from 1 to 1000000, got '0'"),
    (["evaluate", "{p}/empty"], "is not a training run"),
    (["methods", "statc"], "unknown method 'statc'"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "static", "--out", "{p}/bench",
      "--accelerator", "gpu"], "--accelerator gpu cannot run here"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "statc", "--out", "{p}/bench"],
     "unknown method 'statc'"),
    (["benchmark", "--data", "{p}/tiny.npz", "--methods", "static", "--out", "{p}/bench",
      "--jobs", "0"], "--jobs accepts an integer from 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    MISTAKES,
    ids=[f"{i:02d}-{' '.join(a[:1] + a[-2:])}" for i, (a, _) in enumerate(MISTAKES)],  # fmt: skip
)
def test_mistake_exits_2_with_one_line_and_changes_nothing(
    place: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(place)
    status = main([a.replace("{p}", str(place)) for a in args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert needle in lines[0], lines[0]
    assert captured.out == ""
    assert _snapshot(place) == before  # byte-identical, and no lock or temporary left behind


def test_a_moved_data_file_is_found_with_evaluate_data(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = place / "moved-eval.json"
    try:
        assert main(["evaluate", str(place / "moved"), "--data", str(place / "found.npz"),
                     "--out", str(out)]) == 0  # fmt: skip
        assert "accuracy" in capsys.readouterr().out
    finally:
        out.unlink(missing_ok=True)


def test_a_benchmark_folder_in_use_is_refused(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two benchmarks into one folder at once: the second is refused, naming the first."""
    before = _snapshot(place)
    with FolderLock(place / "bench", command="robustfusion benchmark --out bench"):
        argv = ["benchmark", "--data", str(place / "tiny.npz"), "--methods", "static",
                "--epochs", "1", "--out", str(place / "bench"), "--no-progress"]  # fmt: skip
        status = main(argv)
        line = capsys.readouterr().err.strip()
        assert status == 2 and "\n" not in line, line
        assert "is in use by pid" in line and "(robustfusion benchmark --out bench)" in line
    assert _snapshot(place) == before


def test_there_are_at_least_25_mistakes() -> None:
    assert len(MISTAKES) >= 25


def test_a_folder_in_use_is_refused_naming_its_holder(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(place)
    with FolderLock(place / "run", command="robustfusion train --out run"):
        locked = _snapshot(place)
        for extra in ((), ("--overwrite",), ("--resume", "--epochs", "3")):
            status = main(_train(place, "run", *extra))
            line = capsys.readouterr().err.strip()
            assert status == 2 and "\n" not in line
            assert f"is in use by pid {os.getpid()} on host" in line, line
            assert "(robustfusion train --out run)" in line
            assert _snapshot(place) == locked
    assert _snapshot(place) == before  # the lock file went with its holder
