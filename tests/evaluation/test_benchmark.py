"""The benchmark: grids, atomic resumable results, unimodal view choice, a killed run resumes."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from robustfusion.data import DatasetInfo, DataSplits, ModalityInfo, TensorMultimodalDataset
from robustfusion.data.corruptions import corrupt
from robustfusion.evaluation.benchmark import (
    Backend,
    Benchmark,
    BenchmarkConfig,
    ResultsTable,
    evaluation_cells,
)
from robustfusion.evaluation.grids import Grid, corrupt_level, default_grid, missing_subsets
from robustfusion.training.config import TrainConfig
from robustfusion.types import Batch

INFO = DatasetInfo(
    name="toy",
    modalities=(ModalityInfo("a", (3,)), ModalityInfo("b", (2,)), ModalityInfo("c", (2,))),
    num_classes=2,
)


def _splits() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    data = TensorMultimodalDataset(
        {"a": torch.randn(20, 3, generator=g), "b": torch.randn(20, 2, generator=g), "c": torch.randn(20, 2, generator=g)},
        torch.arange(20) % 2,
    )  # fmt: skip
    return DataSplits(data, data, data, INFO)


class Interrupted(Exception):
    pass


class FakeBackend:
    """Counts calls; ``fail_after`` evaluations raise (a kill in the middle of the grid)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.trained: list[str] = []
        self.fresh: list[str] = []
        self.evaluated: list[tuple[str, int]] = []
        self.fail_after = fail_after
        self.splits = _splits()

    def backend(self) -> Backend:
        return Backend(
            info=lambda config: INFO,
            train=self.train,
            load=self.load,
            batches=lambda splits, size: [splits.test.__getitems__(list(range(len(splits.test))))],
            evaluate=self.evaluate,
        )

    def train(self, config: TrainConfig, fresh: bool = False) -> dict[str, Any]:
        name = Path(str(config.out)).name
        self.trained.append(name)
        if fresh:
            self.fresh.append(name)
        view = (config.method_options.get("unimodal") or {}).get("modality")
        metrics = {"val_accuracy": {"a": 0.5, "b": 0.9, "c": 0.7}.get(view, 0.8), "accuracy": 0.8}
        Path(str(config.out)).mkdir(parents=True, exist_ok=True)
        config.to_yaml(Path(str(config.out)) / "config.yaml")
        (Path(str(config.out)) / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    def load(self, run_dir: Path) -> tuple[Any, DataSplits, TrainConfig]:
        return run_dir.name, self.splits, TrainConfig()

    def evaluate(
        self,
        model: Any,
        batches: list[Batch],
        info: DatasetInfo,
        transforms: list[Any],
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        out = []
        for transform in transforms:
            if self.fail_after is not None and len(self.evaluated) >= self.fail_after:
                raise Interrupted
            batch = batches[0] if transform is None else transform(batches[0])
            self.evaluated.append((model, len(self.evaluated)))
            absent = [m for m in info.modality_names if not bool(batch.present[m].all())]
            accuracy = 1.0 - 0.1 * len(absent) - 0.01 * float(batch.inputs["a"].abs().mean())
            out.append(
                {
                    "accuracy": accuracy,
                    "macro_f1": accuracy,
                    "ece": 0.1,
                    "unimodal_accuracy": {},
                    "mean_weight": {m: 1 / 3 for m in info.modality_names},
                    "num_samples": batch.batch_size,
                }
            )
        return out


def _config(
    out: Path, methods: tuple[str, ...] = ("static", "tmc"), quick: bool = True
) -> BenchmarkConfig:
    return BenchmarkConfig(
        methods=methods,
        seeds=(0, 1),
        out=out,
        base=TrainConfig(dataset="toy"),
        grid=default_grid(quick),
    )


def test_killed_benchmark_resumes_without_recomputing_finished_cells(tmp_path: Path) -> None:
    cells = len(evaluation_cells(default_grid(True), INFO.modality_names))
    total = 2 * 2 * cells
    first = FakeBackend(fail_after=cells + 3)
    with pytest.raises(Interrupted):
        Benchmark(_config(tmp_path), first.backend(), progress=False).run()
    assert first.trained == ["static-s0", "static-s1"]
    finished = ResultsTable(tmp_path / "results.csv")
    evaluated_rows = [
        r for r in finished.records() if not (r["severity"] == "0.0" and r["corruption"] != "none")
    ]
    assert len(evaluated_rows) == cells + 3
    second = FakeBackend()
    Benchmark(_config(tmp_path), second.backend(), progress=False).run()
    assert second.trained == ["tmc-s0", "tmc-s1"]  # finished trainings are not redone
    assert len(second.evaluated) == total - (cells + 3)  # nor finished evaluations
    third = FakeBackend()
    Benchmark(_config(tmp_path), third.backend(), progress=False).run()
    assert third.trained == [] and third.evaluated == []
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    keys = {(r["method"], r["seed"], r["corruption"], r["severity"], r["target"]) for r in rows}
    assert len(keys) == len(rows)
    assert {
        "dataset",
        "method",
        "fusion",
        "seed",
        "corruption",
        "severity",
        "target",
        "accuracy",
        "macro_f1",
        "ece",
    } <= set(rows[0])
    assert (tmp_path / "report.md").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_torn_last_line_is_dropped_and_redone(tmp_path: Path) -> None:
    fake = FakeBackend()
    Benchmark(_config(tmp_path, ("static",)), fake.backend(), progress=False).run()
    path = tmp_path / "results.csv"
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    path.write_text(text[: len(text) - len(last) // 2 - 1])  # a kill in the middle of a write
    again = FakeBackend()
    Benchmark(_config(tmp_path, ("static",)), again.backend(), progress=False).run()
    assert again.trained == [] and len(again.evaluated) == 1
    assert path.read_text().count("\n") == text.count("\n")


def test_unimodal_best_view_is_chosen_on_validation_once(tmp_path: Path) -> None:
    fake = FakeBackend()
    Benchmark(_config(tmp_path, ("unimodal",)), fake.backend(), progress=False).run()
    assert fake.trained == ["unimodal-a-s0", "unimodal-b-s0", "unimodal-c-s0", "unimodal-b-s1"]
    assert json.loads((tmp_path / "unimodal_view.json").read_text())["view"] == "b"
    rows = ResultsTable(tmp_path / "results.csv").records()
    assert {r["view"] for r in rows} == {"b"} and {r["method"] for r in rows} == {"unimodal"}
    assert "**b**" in (tmp_path / "report.md").read_text()


def test_cells_and_missing_subsets() -> None:
    grid = Grid(severities={"gaussian": (0.0, 1.0, 2.0)}, max_missing_subsets=20)
    cells = evaluation_cells(grid, ("a", "b", "c"))
    # clean + 2 severities x (all, each, a, b, c) + 6 proper non-empty subsets
    assert len(cells) == 1 + 2 * 5 + 6
    grid = Grid(severities={"gaussian": (0.0, 1.0), "blur": (0.0, 1.0)}, max_missing_subsets=0)
    assert len(evaluation_cells(grid, ("a", "b"))) == 1 + 4 + 2  # blur: all and each only
    many = missing_subsets([f"m{i}" for i in range(6)], limit=20, seed=0)
    assert len(many) == 20 and len(set(many)) == 20
    assert many == missing_subsets([f"m{i}" for i in range(6)], limit=20, seed=0)
    assert [s for s in many if len(s) == 1] == [(f"m{i}",) for i in range(6)]
    assert all(0 < len(s) < 6 for s in many)


def test_corrupt_level_gives_each_modality_its_own_units() -> None:
    info = DatasetInfo(
        name="mixed",
        modalities=(
            ModalityInfo("img", (1, 4, 4), "image", 1 / (255 * 0.5)),
            ModalityInfo("vec", (16,)),
        ),
        num_classes=2,
    )
    n = 400
    batch = Batch(
        inputs={"img": torch.zeros(n, 1, 4, 4), "vec": torch.zeros(n, 16)},
        present={"img": torch.ones(n, dtype=torch.bool), "vec": torch.ones(n, dtype=torch.bool)},
        target=torch.zeros(n, dtype=torch.long),
        index=torch.arange(n),
    )
    out = corrupt_level(batch, info, "gaussian", 2.0, "all", seed=0)
    assert float(out.inputs["img"].std()) == pytest.approx(2.0, rel=0.05)
    assert float(out.inputs["vec"].std()) == pytest.approx(2.0, rel=0.05)
    each = corrupt_level(batch, info, "gaussian", 2.0, "each", seed=0)
    reference = corrupt(batch, info, "gaussian", 1.0, target="each", seed=0)
    for m in ("img", "vec"):
        hit = each.inputs[m].flatten(1).abs().sum(1) > 0
        assert torch.equal(hit, reference.inputs[m].flatten(1).abs().sum(1) > 0)
        assert 0.35 < float(hit.float().mean()) < 0.65
        assert bool(each.present[m].all())


@pytest.mark.slow
def test_real_benchmark_on_mfeat_resumes(tmp_path: Path) -> None:
    from robustfusion.evaluation.benchmark import default_backend

    torch.set_num_threads(1)
    grid = Grid(severities={"gaussian": (0.0, 2.0)}, modality_targets=(), max_missing_subsets=2)
    base = TrainConfig(
        dataset="mfeat", dataset_options={"views": "fou,kar"}, epochs=1, batch_size=128
    )
    config = BenchmarkConfig(methods=("qmf",), seeds=(0,), out=tmp_path, base=base, grid=grid)
    real = default_backend()
    calls = {"train": 0, "evaluate": 0}

    def evaluate(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        calls["evaluate"] += 1
        if calls["evaluate"] == 3:
            raise Interrupted
        return real.evaluate(*args, **kwargs)

    def train(config: TrainConfig, fresh: bool) -> dict[str, Any]:
        calls["train"] += 1
        return real.train(config, fresh)

    backend = Backend(
        info=real.info, train=train, load=real.load, batches=real.batches, evaluate=evaluate
    )
    with pytest.raises(Interrupted):
        Benchmark(config, backend, progress=False).run()
    # the clean cell is the training's own test evaluation; then one pass per (corruption,
    # target): gaussian all, gaussian each, and one per missing subset (2); killed in the third
    assert calls == {"train": 1, "evaluate": 3}
    Benchmark(config, backend, progress=False).run()
    assert calls == {"train": 1, "evaluate": 3 + 2}
    rows = ResultsTable(tmp_path / "results.csv").records()
    clean = next(r for r in rows if r["corruption"] == "none")
    metrics = json.loads((tmp_path / "runs" / "qmf-s0" / "metrics.json").read_text())
    assert float(clean["accuracy"]) == metrics["accuracy"] > 0.5
    assert "| qmf |" in (tmp_path / "report.md").read_text()


def test_a_run_of_other_settings_is_retrained_and_its_rows_redone(tmp_path: Path) -> None:
    fake = FakeBackend()
    Benchmark(_config(tmp_path, ("static",)), fake.backend(), progress=False).run()
    first = ResultsTable(tmp_path / "results.csv").records()
    assert fake.fresh == [] and len({r["config_hash"] for r in first}) == 2  # one per seed
    other = _config(tmp_path, ("static",))
    other.base = other.base.with_overrides(epochs=5)
    again = FakeBackend()
    Benchmark(other, again.backend(), progress=False).run()
    assert again.trained == again.fresh == ["static-s0", "static-s1"]
    second = ResultsTable(tmp_path / "results.csv").records()
    assert len(second) == len(first)
    assert not {r["config_hash"] for r in first} & {r["config_hash"] for r in second}
    meta = json.loads((tmp_path / "benchmark.json").read_text())
    assert {run["epochs"] for run in meta["runs"].values()} == {5}
    report = (tmp_path / "report.md").read_text()
    assert "epochs 5" in report and "epochs 30" not in report
    same = FakeBackend()
    Benchmark(other, same.backend(), progress=False).run()
    assert same.trained == [] and same.evaluated == []


def test_blur_is_only_aimed_at_ordered_modalities() -> None:
    info = DatasetInfo(
        name="mixed",
        modalities=(ModalityInfo("img", (1, 8, 8), "image", 1 / 255), ModalityInfo("vec", (4,))),
        num_classes=2,
    )
    grid = Grid(severities={"blur": (0.0, 1.0), "gaussian": (0.0, 1.0)}, modality_targets=("blur",))
    assert grid.targets(info, "blur") == ("all", "each", "img")
    assert grid.skipped(info) == [
        {"corruption": "blur", "target": "vec", "reason": grid.skipped(info)[0]["reason"]}
    ]
    assert "unordered" in grid.skipped(info)[0]["reason"]
    vectors = DatasetInfo(name="v", modalities=(ModalityInfo("a", (4,)),), num_classes=2)
    assert grid.targets(vectors, "blur") == ()
    n = 6
    batch = Batch(
        inputs={"img": torch.randn(n, 1, 8, 8), "vec": torch.randn(n, 4)},
        present={"img": torch.ones(n, dtype=torch.bool), "vec": torch.ones(n, dtype=torch.bool)},
        target=torch.zeros(n, dtype=torch.long),
        index=torch.arange(n),
    )
    out = corrupt_level(batch, info, "blur", 1.0, "all", seed=0)
    assert torch.equal(out.inputs["vec"], batch.inputs["vec"])
    assert not torch.equal(out.inputs["img"], batch.inputs["img"])
    assert bool(out.corrupted["img"].all()) and "vec" not in out.corrupted


def test_method_labels_carry_options_and_name_safe_folders() -> None:
    from robustfusion.errors import ConfigError, UnknownNameError
    from robustfusion.evaluation.variants import parse_variant

    variant = parse_variant("mwam+modality_dropout:preset=code:modality_dropout.p=0.5")
    assert variant.name == "mwam+modality_dropout"
    assert variant.options == {"mwam": {"preset": "code"}, "modality_dropout": {"p": 0.5}}
    assert "/" not in variant.folder_name() and ":" not in variant.folder_name()
    with pytest.raises(UnknownNameError):
        parse_variant("udlm")
    with pytest.raises(ConfigError, match="not part of"):
        parse_variant("mwam:udml.gamma=4")
    with pytest.raises(ConfigError, match="no per-sample weights"):
        parse_variant("static~uniform")


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(tmp_path: Path) -> None:
    grid = Grid(
        severities={"gaussian": (0.0, 1.0, 4.0)}, modality_targets=(), max_missing_subsets=1
    )
    base = TrainConfig(
        dataset="mfeat", dataset_options={"views": "fou,mor"}, epochs=1, batch_size=128
    )
    tables = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        config = BenchmarkConfig(
            methods=("modality_dropout",), seeds=(0, 1), out=out, base=base, grid=grid,
            jobs=jobs,
        )  # fmt: skip
        Benchmark(config, progress=False).run()
        rows = ResultsTable(out / "results.csv").records()
        tables.append(sorted(tuple(sorted(r.items())) for r in rows))
    assert tables[0] == tables[1] and len(tables[0]) > 8
    assert (tmp_path / "jobs2" / "runs" / "modality_dropout-s1" / "model.pt").is_file()


def test_random_corruptions_average_over_noise_draws(tmp_path: Path) -> None:
    grid = Grid(severities={"gaussian": (0.0, 2.0)}, modality_targets=(), max_missing_subsets=1)
    rows = {}
    for draws in (1, 3):
        fake = FakeBackend()
        out = tmp_path / f"draws{draws}"
        config = BenchmarkConfig(
            methods=("static",), seeds=(0,), out=out, base=TrainConfig(dataset="toy"),
            grid=dataclasses.replace(grid, noise_draws=draws),
        )  # fmt: skip
        Benchmark(config, fake.backend(), progress=False).run()
        # clean once, gaussian all and each `draws` times each, the (not random) missing subset once
        assert len(fake.evaluated) == 1 + 2 * draws + 1
        rows[draws] = {
            (r["corruption"], r["target"]): float(r["accuracy"])
            for r in ResultsTable(out / "results.csv").records()
        }
    single = [FakeBackend().evaluate("m", [_splits().test.__getitems__(list(range(20)))], INFO,
              [lambda b, s=s: corrupt_level(b, INFO, "gaussian", 2.0, "all", s)])[0]["accuracy"]
              for s in (0, 1, 2)]  # fmt: skip
    assert rows[3][("gaussian", "all")] == pytest.approx(sum(single) / 3)
    assert rows[1][("gaussian", "all")] == pytest.approx(single[0])


def test_the_decoder_setting_keeps_earlier_runs_valid_and_tells_skips_apart() -> None:
    """``decoder: head`` hashes as configurations did before the setting existed, so earlier
    run folders and results cells are reused; ``skips`` is another configuration."""
    import hashlib
    import json

    from robustfusion.evaluation.benchmark import config_hash

    head = TrainConfig(dataset="rgbd_scenes", out="x")
    then = {
        k: v
        for k, v in head.resolved().to_dict().items()
        if k not in ("out", "num_workers", "decoder")
    }
    text = json.dumps(then, sort_keys=True, default=str)
    assert config_hash(head) == hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    skips = TrainConfig(dataset="rgbd_scenes", out="x", decoder="skips")
    assert config_hash(skips) != config_hash(head)
