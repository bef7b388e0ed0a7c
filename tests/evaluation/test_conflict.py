"""RCML's conflictive test protocol and the mfeat split/scaling of its code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.data.base import TensorMultimodalDataset
from robustfusion.data.datasets.mfeat import asset_path
from robustfusion.errors import ConfigError
from robustfusion.evaluation.conflict import (
    ConflictProtocol,
    ConflictTransform,
    main,
    plan_conflict,
)
from robustfusion.registry import DATASETS

CLASSES = 5


def _split(count: int = 200, seed: int = 0) -> TensorMultimodalDataset:
    generator = torch.Generator().manual_seed(seed)
    arrays = {
        "a": torch.rand(count, 6, generator=generator),
        "b": torch.rand(count, 4, generator=generator),
        "c": torch.rand(count, 3, 2, generator=generator),
    }
    return TensorMultimodalDataset(arrays, torch.arange(count) % CLASSES)


def _whole(dataset: TensorMultimodalDataset):  # noqa: ANN202
    return dataset.__getitems__(list(range(len(dataset))))


def test_the_authors_fractions_are_exact_and_the_rules_hold() -> None:
    split = _split()
    clean = _whole(split)
    transform = ConflictTransform(split, CLASSES, ConflictProtocol(), seed=3)
    plan = transform.plan
    conflicted = plan.view >= 0
    assert int(conflicted.sum()) == 80  # int(0.4 * 200)
    noise_rows = plan.noisy.any(1)
    # int(0.1 * 200) = 20 samples drawn; r ~ U{0, 1, 2} views each, so some keep every view clean
    assert 10 <= int(noise_rows.sum()) <= 20
    assert not bool(plan.noisy.all(1).any())  # never all V views (r <= V - 1)
    # the donor is the first sample of class (y + 1) mod C in the split
    wanted = (clean.target + 1) % CLASSES
    first = torch.tensor([int((clean.target == c).nonzero()[0]) for c in range(CLASSES)])
    torch.testing.assert_close(plan.donor[conflicted], first[wanted[conflicted]])
    out = transform(clean)
    for i, m in enumerate(clean.modalities):
        replaced = plan.view == i
        torch.testing.assert_close(out.inputs[m][replaced], clean.inputs[m][plan.donor[replaced]])
        untouched = ~replaced & ~plan.noisy[:, i]
        torch.testing.assert_close(out.inputs[m][untouched], clean.inputs[m][untouched])
        noisy_only = plan.noisy[:, i] & ~replaced
        assert bool((out.inputs[m][noisy_only] != clean.inputs[m][noisy_only]).all())
        assert torch.equal(out.corrupted[m], replaced | plan.noisy[:, i])
    assert out.present == clean.present


def test_noise_has_the_protocol_std() -> None:
    split = _split(4000)
    clean = _whole(split)
    protocol = ConflictProtocol(noise_fraction=1.0, conflict_fraction=0.0)
    out = ConflictTransform(split, CLASSES, protocol, seed=1)(clean)
    noisy = out.corrupted["a"]
    assert int(noisy.sum()) > 1000
    delta = out.inputs["a"][noisy] - clean.inputs["a"][noisy]
    assert float(delta.std()) == pytest.approx(0.5, rel=0.03)
    assert float(delta.mean()) == pytest.approx(0.0, abs=0.02)


def test_seeded_and_independent_of_batching() -> None:
    split = _split()
    transform = ConflictTransform(split, CLASSES, seed=7)
    whole = transform(_whole(split))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    for chunk in order.split(37):
        part = transform(split.__getitems__(chunk.tolist()))
        for m in whole.modalities:
            torch.testing.assert_close(part.inputs[m], whole.inputs[m][chunk], rtol=0, atol=0)
            assert torch.equal(part.corrupted[m], whole.corrupted[m][chunk])
    again = ConflictTransform(split, CLASSES, seed=7)(_whole(split))
    other = ConflictTransform(split, CLASSES, seed=8)(_whole(split))
    assert all(torch.equal(again.inputs[m], whole.inputs[m]) for m in whole.modalities)
    assert not torch.equal(other.inputs["a"], whole.inputs["a"])


def test_absent_views_are_never_noised_replaced_or_donated() -> None:
    targets = torch.arange(300) % CLASSES
    present = torch.ones(300, 3, dtype=torch.bool)
    present[::3, 1] = False
    protocol = ConflictProtocol(noise_fraction=1.0, conflict_fraction=1.0, donor="random")
    plan = plan_conflict(targets, present, CLASSES, protocol, seed=2)
    assert not bool((plan.noisy & ~present).any())
    used = plan.view >= 0
    assert bool(present[used, plan.view[used]].all())
    assert bool(present[plan.donor[used], plan.view[used]].all())
    # random donors are of class (y + 1) mod C and vary within a class
    assert torch.equal(targets[plan.donor[used]], (targets[used] + 1) % CLASSES)
    assert len(set(plan.donor[used & (targets == 0)].tolist())) > 5
    # a class with no sample in the split: no conflict for the class before it
    lonely = torch.tensor([0, 0, 1, 1])
    none = plan_conflict(lonely, torch.ones(4, 2, dtype=torch.bool), 3, protocol, seed=0)
    assert bool((none.view[2:] == -1).all()) and bool((none.view[:2] >= 0).all())


def test_bad_settings_are_one_line_config_errors() -> None:
    for bad in ({"noise_fraction": 1.5}, {"conflict_fraction": -0.1}, {"noise_std": -1.0},
                {"donor": "last"}):  # fmt: skip
        with pytest.raises(ConfigError, match="conflict protocol"):
            ConflictProtocol(**bad)  # type: ignore[arg-type]


def test_mfeat_rcml_split_and_transductive_minmax() -> None:
    load = DATASETS.get("mfeat")
    splits = load(None, 3, split="rcml", scaling="minmax_all", val_fraction=0.0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1600, 1600, 400)
    assert torch.equal(splits.train.targets(), splits.val.targets())
    for m in splits.info.modality_names:
        every = torch.cat([splits.train.arrays[m], splits.test.arrays[m]])
        assert float(every.min()) == 0.0 and float(every.max()) == pytest.approx(1.0)
    again = load(None, 3, split="rcml", scaling="minmax_all", val_fraction=0.0)
    other = load(None, 4, split="rcml", scaling="minmax_all", val_fraction=0.0)
    assert torch.equal(again.test.arrays["fou"], splits.test.arrays["fou"])
    assert not torch.equal(other.test.arrays["fou"], splits.test.arrays["fou"])
    held = load(None, 3, split="rcml")  # default: 10 % of the training rows for validation
    assert (len(held.train), len(held.val), len(held.test)) == (1440, 160, 400)
    assert torch.equal(held.test.targets(), splits.test.targets())
    assert "RCML" in splits.info.extra["split"]
    # every row scaled with the minimum and maximum of all 2000 rows (the authors' MinMaxScaler)
    with np.load(asset_path(), allow_pickle=False) as raw:
        x = raw["mor"].astype(np.float64)
    expected = (x - x.min(0)) / np.where(np.ptp(x, 0) > 0, np.ptp(x, 0), 1.0)
    rows = np.sort(np.random.default_rng(3).permutation(2000)[1600:])
    np.testing.assert_allclose(splits.test.arrays["mor"].numpy(), expected[rows], atol=1e-6)


def test_evaluate_conflict_on_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustfusion.training.config import TrainConfig
    from robustfusion.training.run import train

    config = TrainConfig(
        dataset="mfeat",
        dataset_options={"split": "rcml", "scaling": "minmax_all", "val_fraction": 0.0},
        method="ecml",
        encoders={m: "identity" for m in ("fou", "fac", "kar", "pix", "zer", "mor")},
        epochs=2,
        batch_size=200,
        lr=0.003,
        selection="last",
        out=str(tmp_path / "run"),
    )
    metrics = train(config, progress=False)
    out = tmp_path / "conflict.json"
    assert main([str(tmp_path / "run"), "--draws", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert result["normal"]["accuracy"] == metrics["accuracy"]
    assert result["conflict"]["noise_draws"] == 2
    assert result["conflict"]["accuracy"] < result["normal"]["accuracy"]
    assert "ecml" in capsys.readouterr().out
    assert main([str(tmp_path / "run"), "--donor", "last"]) == 2
    assert main([str(tmp_path / "nothing")]) == 2


def test_benchmark_conflict_option_adds_a_cell_and_a_report_table(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``benchmark --conflict``: one conflictive row per run (its noise draws averaged), the
    same rows whatever the batch size, and a table in report.md."""
    import csv

    from robustfusion.cli import main

    def bench(out: Path, *extra: str) -> list[dict[str, str]]:
        argv = ["benchmark", "--data", str(tiny_npz), "--methods", "static,tmc", "--seeds", "0",
                "--quick", "--epochs", "1", "--conflict", "--jobs", "1", "--no-progress",
                "--out", str(out), *extra]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        with open(out / "results.csv", newline="") as handle:
            return [r for r in csv.DictReader(handle) if r["corruption"] == "conflict"]

    rows = bench(tmp_path / "a")
    assert sorted(r["method"] for r in rows) == ["static", "tmc"]
    assert all(r["severity"] == "1.0" and r["target"] == "all" for r in rows)
    report = (tmp_path / "a" / "report.md").read_text()
    assert "## Conflictive test (RCML)" in report and "| tmc |" in report
    again = bench(tmp_path / "b", "--eval-batch-size", "7")
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
