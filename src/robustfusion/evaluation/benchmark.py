"""The robustness benchmark: train every (method, seed) once, evaluate it over a grid, report.

*Runs* are trainings ``(method label, seed)`` in ``DIR/runs/<label>-s<seed>/``. A finished run is
reused only when its resolved configuration equals the requested one (its ``config.yaml`` hashes
to the same :func:`config_hash`); otherwise it is trained afresh, and the rows measured on the
old run are dropped. A run without ``metrics.json`` is resumed from its last checkpoint.

*Cells* are evaluations ``(method, seed, corruption, severity, target, weights)``. Every finished
cell is appended to ``DIR/results.csv`` as one line in a single write, tagged with its run's
``config_hash``, and the file is read back on start, so a killed benchmark redoes nothing that
finished. A run's test split is fetched once and every cell is evaluated on those batches;
the severities of one corruption and target go through the model together. The clean cell is the
test evaluation the training already made (``metrics.json``) when the corruption seed is 0, and
severity 0 of every curve is a copy of it. The missing-modality table uses rows
``corruption = missing_subset``, ``target = the absent modalities joined by '+'``.

Method labels may carry options and name uniform twins (:mod:`robustfusion.evaluation.variants`).
With ``weight_controls``, every method with per-sample weights also gets its uniform twin
(``<label>~uniform``) and every checkpoint of those is evaluated with ``weights`` ``learned``,
``uniform`` and ``oracle`` ("do the weights matter?").

``jobs > 1`` runs independent runs in that many worker processes, each with
``threads_per_job`` intra-op threads (default 1). The numbers do not depend on ``jobs``: every
run uses the same thread count whatever the number of workers (the thread count can change the
last bits of floating-point sums, so it is fixed rather than derived from ``jobs``).

``unimodal`` (best view): for the first seed one unimodal run per modality; the modality with
the best validation accuracy is kept (``DIR/unimodal_view.json``) and trained for the other seeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import DatasetInfo, DataSplits
from robustfusion.errors import ConfigError, RunFolderError
from robustfusion.evaluation.grids import (
    Grid,
    check_grid,
    corrupt_level,
    missing_subsets,
    remove_modalities,
    subset_name,
)
from robustfusion.evaluation.results import (
    CLEAN,
    CONFLICT,
    LEARNED,
    META_FILE,
    MISSING_SUBSET,
    RESULTS_FILE,
    TRAINING_SETTINGS,
    CellKey,
    ResultsTable,
    cell_key,
    iter_rows,
    results_columns,
)
from robustfusion.evaluation.variants import MethodVariant, parse_variant, twin_of
from robustfusion.registry import CORRUPTIONS
from robustfusion.tasks import task_of
from robustfusion.tasks.base import Task
from robustfusion.training.config import TrainConfig
from robustfusion.types import Batch

__all__ = [
    "Backend",
    "Benchmark",
    "BenchmarkConfig",
    "Cell",
    "ResultsTable",
    "config_hash",
    "evaluation_cells",
    "iter_rows",
    "parse_list",
    "run_dir",
]

UNIMODAL_FILE = "unimodal_view.json"
RUNS_DIR = "runs"
#: Settings that do not change what a run computes (where it is written, how many loader workers).
_UNHASHED = ("out", "num_workers")
#: Settings added after run folders existed, at the value that behaves as before they existed:
#: left out of the hash there, so that earlier runs and their results cells stay valid, and out
#: of the report's training settings (``decoder head`` says nothing on classification).
_HASHED_UNLESS = {"decoder": "head"}


def config_hash(config: TrainConfig) -> str:
    """A short hash of every setting of a resolved run configuration that changes its results."""
    settings = {
        k: v
        for k, v in config.resolved().to_dict().items()
        if k not in _UNHASHED and _HASHED_UNLESS.get(k, object()) != v
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Backend:
    """The functions the benchmark calls (injectable: tests pass fakes).

    ``train(config, fresh)`` trains (``fresh``: the run folder holds another configuration and is
    replaced; else resume or start); ``batches(splits, batch_size)`` fetches the test split once;
    ``evaluate(model, batches, info, transforms, weights, seed)`` returns one metrics dict per
    transform (``None``: clean).
    """

    info: Callable[[TrainConfig], DatasetInfo]
    train: Callable[[TrainConfig, bool], dict[str, Any]]
    load: Callable[[Path], tuple[Any, DataSplits, TrainConfig]]
    batches: Callable[[DataSplits, int], list[Batch]]
    evaluate: Callable[..., list[dict[str, Any]]]


def default_backend() -> Backend:
    """Training with :func:`robustfusion.training.run.train` (resumable), evaluation with
    :func:`robustfusion.evaluation.evaluate.evaluate_many` on cached test batches."""
    from robustfusion.evaluation.evaluate import evaluate_many, test_batches
    from robustfusion.training.build import load_data
    from robustfusion.training.run import load_run, train

    def train_run(config: TrainConfig, fresh: bool) -> dict[str, Any]:
        # fresh: the folder holds a run of other settings, replaced once the new run completes
        return train(config, resume=not fresh, overwrite=fresh, progress=False)

    return Backend(
        info=lambda config: load_data(config).info,
        train=train_run,
        load=load_run,
        batches=lambda splits, size: test_batches(splits.test, size),
        evaluate=evaluate_many,
    )


@dataclass
class BenchmarkConfig:
    """Methods (labels), seeds, the base training config, per-method overrides and the grid."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    out: Path
    base: TrainConfig
    grid: Grid = field(default_factory=Grid)
    #: Training settings per method label (or registered name), e.g. ``{"tmc": {"epochs": 60}}``.
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Independent runs trained and evaluated in parallel worker processes.
    jobs: int = 1
    #: Intra-op threads of every run (fixed so that results do not depend on ``jobs``).
    threads_per_job: int = 1
    #: "Do the weights matter?": train the uniform twin of every method with dynamic weights and
    #: evaluate every checkpoint with learned, uniform and oracle weights.
    weight_controls: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}")
        if self.threads_per_job < 1:
            raise ConfigError(f"--threads-per-job must be at least 1, got {self.threads_per_job}")
        if not self.methods:
            raise ConfigError("--methods is empty: give e.g. static,tmc,qmf")
        if not self.seeds:
            raise ConfigError("--seeds is empty: give e.g. 0,1,2")
        if len(set(self.methods)) != len(self.methods) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("--methods and --seeds must not repeat a value")
        check_grid(self.grid, list(self.grid.severities))

    def variants(self) -> list[MethodVariant]:
        """Every method label to run: the given ones, then (with ``weight_controls``) the twins."""
        given = [parse_variant(label) for label in self.methods]
        out = list(given)
        if self.weight_controls:
            labels = {v.label for v in given}
            for variant in given:
                twin = twin_of(variant)
                if twin is not None and twin.label not in labels:
                    out.append(twin)
                    labels.add(twin.label)
        return out


@dataclass(frozen=True)
class Cell:
    corruption: str
    severity: float
    target: str
    subset: tuple[str, ...] = ()


def evaluation_cells(grid: Grid, info: DatasetInfo | Sequence[str]) -> list[Cell]:
    """Clean first, then every (corruption, target, severity > 0), then the missing subsets.

    Given a :class:`DatasetInfo`, corruptions are only aimed at modalities they apply to.
    """
    names = info.modality_names if isinstance(info, DatasetInfo) else tuple(info)
    cells = [Cell(CLEAN, 0.0, "all")]
    for corruption, severities in grid.severities.items():
        for target in grid.targets(info, corruption):
            cells += [Cell(corruption, float(s), target) for s in severities if s > 0]
    for subset in missing_subsets(names, grid.max_missing_subsets, grid.eval_seed):
        cells.append(Cell(MISSING_SUBSET, 1.0, subset_name(subset), tuple(subset)))
    if grid.conflict is not None:
        cells.append(Cell(CONFLICT, 1.0, "all"))
    return cells


def weight_modes(cell: Cell, controls: bool) -> tuple[str, ...]:
    """The weights a cell is evaluated with: learned only, or also uniform and oracle (the
    oracle equals uniform where nothing is corrupted: clean data and missing modalities)."""
    if not controls:
        return (LEARNED,)
    if cell.corruption in (CLEAN, MISSING_SUBSET):
        return (LEARNED, "uniform")
    return (LEARNED, "uniform", "oracle")


def run_dir(out: Path, label: str, seed: int, view: str | None = None) -> Path:
    name = parse_variant(label).folder_name() if ":" in label or "=" in label else label
    name = f"{name}-{view}-s{seed}" if view else f"{name}-s{seed}"
    return Path(out) / RUNS_DIR / name


@dataclass(frozen=True)
class Job:
    """One run: train it if needed, then evaluate its missing cells."""

    label: str
    seed: int
    view: str | None = None


class Benchmark:
    """Runs (or resumes) a benchmark; see the module docstring."""

    def __init__(
        self,
        config: BenchmarkConfig,
        backend: Backend | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.backend = backend
        self.progress = progress
        self.out = Path(config.out)
        self.results = ResultsTable(self.out / RESULTS_FILE)  # replaced once the columns are known
        self.info: DatasetInfo | None = None
        self._variants = {v.label: v for v in config.variants()}

    def _backend(self) -> Backend:
        if self.backend is None:
            self.backend = default_backend()
        return self.backend

    # -------------------------------------------------------------- configs
    def train_config(self, label: str, seed: int, view: str | None = None) -> TrainConfig:
        variant = self._variants.get(label) or parse_variant(label)
        overrides: dict[str, Any] = {}
        for key in (variant.name, variant.base_label, label):
            overrides.update(self.config.method_overrides.get(key, {}))
        options = variant.method_options()
        for name, values in (overrides.pop("method_options", None) or {}).items():
            options.setdefault(name, {}).update(values)
        if view is not None:
            options.setdefault("unimodal", {})["modality"] = view
        config = self.config.base.with_overrides(
            method=variant.name,
            seed=seed,
            out=str(run_dir(self.out, label, seed, view)),
            method_options=options or None,
            **overrides,
        )
        # --method-option applies to the runs of the methods it names; the others do without
        parts = set(config.method.split("+"))
        kept = {k: v for k, v in config.method_options.items() if k in parts}
        if kept == config.method_options:
            return config
        return dataclasses.replace(config, method_options=kept)

    def check_options_used(self) -> None:
        """Every ``--method-option`` names a method that some label of the benchmark runs."""
        used = {part for variant in self._variants.values() for part in variant.parts}
        unused = sorted(set(self.config.base.method_options) - used)
        if unused:
            keys = ", ".join(f"{unused[0]}.{k}" for k in self.config.base.method_options[unused[0]])
            raise ConfigError(
                f"method option {keys} is for method {unused[0]!r}, which no label of --methods "
                f"runs ({', '.join(self._variants)}): drop it or add {unused[0]} to --methods"
            )

    def check_folder(self) -> None:
        """Refuse a folder that holds something other than a benchmark (a training run, a user's
        files): the benchmark would write its results among them."""
        if not self.out.exists():
            return
        if not self.out.is_dir():
            raise RunFolderError(f"--out {self.out} is a file, not a folder: give a folder")
        from robustfusion.evaluation.report import PART_FILE
        from robustfusion.training.run import CONFIG_FILE, MODEL_FILE

        if (self.out / META_FILE).exists() or (self.out / RESULTS_FILE).exists():
            return
        own = {RUNS_DIR, PART_FILE}  # what a suite writes before its part's benchmark
        held = sorted(p.name for p in self.out.iterdir() if p.name not in own)
        if CONFIG_FILE in held or MODEL_FILE in held:
            raise RunFolderError(
                f"--out {self.out} holds a training run, not a benchmark: give a new folder"
            )
        if held:
            raise RunFolderError(
                f"--out {self.out} holds other files ({', '.join(held[:3])}) and no benchmark: "
                "give a new or empty folder"
            )

    @property
    def task(self) -> Task:
        """The dataset's task (known once :meth:`prepare` has read the dataset's info)."""
        if self.info is None:
            raise RuntimeError("Benchmark.task is known after prepare()")
        return task_of(self.info.task)

    def columns(self, info: DatasetInfo) -> list[str]:
        """The columns of ``results.csv``: the cell's identity, then the task's columns."""
        return results_columns(task_of(info.task), info.modality_names)

    # -------------------------------------------------------------- planning
    def prepare(self) -> tuple[DatasetInfo, list[Cell]]:
        """Dataset info, the cells of the grid, the results file; drops rows of stale runs."""
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        info = self._backend().info(
            config.base.with_overrides(seed=config.seeds[0], out=str(self.out))
        )
        self.info = info
        self.results = ResultsTable(self.out / RESULTS_FILE, self.columns(info))
        self.results.ensure_file()
        cells = evaluation_cells(config.grid, info)
        return info, cells

    def _drop_stale_rows(self, tasks: Sequence[Job]) -> None:
        wanted = {
            (t.label, t.seed): config_hash(self.train_config(t.label, t.seed, t.view))
            for t in tasks
        }

        def keep(row: dict[str, str]) -> bool:
            key = (row["method"], int(row["seed"]))
            return key not in wanted or row.get("config_hash") == wanted[key]

        self.results.drop(keep)

    def run(self) -> Path:
        """Train and evaluate every missing cell, then write ``report.md``; returns its path."""
        from robustfusion.lock import FolderLock

        self.check_folder()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.out):
            return self._run()

    def _run(self) -> Path:
        from tqdm.auto import tqdm

        info, cells = self.prepare()
        config = self.config
        meta = self._meta(info, cells)
        write_json(self.out / META_FILE, meta)
        labels = list(self._variants)
        with tqdm(
            total=len(labels) * len(config.seeds),
            disable=not self.progress,
            desc="benchmark",
            unit="run",
        ) as bar:
            views: dict[str, str] = {}
            if "unimodal" in labels:
                view = self._unimodal_view(config.seeds, info.modality_names)
                views["unimodal"] = view
                meta["unimodal_view"] = view
            tasks = [
                Job(label, seed, views.get(label)) for label in labels for seed in config.seeds
            ]
            self._drop_stale_rows(tasks)
            for task, summary in self._execute(tasks):
                meta["runs"][run_dir(self.out, task.label, task.seed, task.view).name] = summary
                write_json(self.out / META_FILE, meta)
                bar.set_postfix_str(f"{task.label} seed {task.seed}")
                bar.update(1)
        from robustfusion.evaluation.report import write_report

        return write_report(self.out)

    def _execute(self, tasks: Sequence[Job]) -> Any:
        """Yield ``(task, run summary)`` as runs finish, in-process or in worker processes."""
        if self.config.jobs == 1 or len(tasks) <= 1:
            with _threads(self.config.threads_per_job):
                for task in tasks:
                    yield task, self.run_task(task)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(self.config.jobs, len(tasks)),
            mp_context=context,
            initializer=_worker_init,
            initargs=(self.config.threads_per_job,),
        ) as pool:
            pending: dict[Future[dict[str, Any]], Job] = {
                pool.submit(_run_task_in_worker, self.config, task): task for task in tasks
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    yield task, future.result()
        self.results = ResultsTable(self.out / RESULTS_FILE, self.results.columns)

    # -------------------------------------------------------------- one run
    def _ensure_trained(self, config: TrainConfig) -> dict[str, Any]:
        """Train ``config`` unless its folder holds a finished run of the same configuration."""
        folder = Path(str(config.out))
        metrics_path = folder / "metrics.json"
        saved = folder / "config.yaml"
        same = saved.is_file() and config_hash(TrainConfig.from_yaml(saved)) == config_hash(config)
        if same and metrics_path.is_file():
            return json.loads(metrics_path.read_text(encoding="utf-8"))
        return self._backend().train(config, saved.is_file() and not same)

    def run_task(self, task: Job) -> dict[str, Any]:
        """Train (if needed) and evaluate the missing cells of one run; returns its settings."""
        if self.info is None:
            self.prepare()
        info = self.info
        assert info is not None
        cells = evaluation_cells(self.config.grid, info)
        config = self.train_config(task.label, task.seed, task.view)
        digest = config_hash(config)
        metrics = self._ensure_trained(config)
        variant = self._variants.get(task.label) or parse_variant(task.label)
        controls = self.config.weight_controls and _has_dynamic_weights(variant)
        todo = [
            (cell, mode)
            for cell in cells
            for mode in weight_modes(cell, controls)
            if cell_key(task.label, task.seed, cell.corruption, cell.severity, cell.target, mode)
            not in self.results
        ]
        identity = {
            "dataset": info.name,
            "method": task.label,
            "fusion": config.fusion,
            "seed": task.seed,
            "view": task.view or "",
            "config_hash": digest,
        }
        clean = next((c for c in cells if c.corruption == CLEAN), None)
        if todo and clean is not None and (clean, LEARNED) in todo and self._reusable(metrics):
            self._record(identity, clean, LEARNED, metrics)
            todo.remove((clean, LEARNED))
        if todo:
            self._evaluate_cells(config, info, identity, todo)
        for mode in {mode for _, mode in todo} | {LEARNED}:
            key = cell_key(task.label, task.seed, CLEAN, 0.0, "all", mode)
            if key in self.results:  # a kill may have come between the clean row and its copies
                self._copy_clean(self.results.rows[key], info)
        return {"label": task.label, **self._summary(config, digest)}

    def _reusable(self, metrics: dict[str, Any]) -> bool:
        """The training's own test evaluation is the clean cell (same code, seed 0)."""
        needed = (*self.task.metric_names, "mean_weight", "num_samples")
        return self.config.grid.eval_seed == 0 and all(k in metrics for k in needed)

    def _evaluate_cells(
        self,
        config: TrainConfig,
        info: DatasetInfo,
        identity: dict[str, Any],
        todo: list[tuple[Cell, str]],
    ) -> None:
        backend = self._backend()
        model, splits, _ = backend.load(Path(str(config.out)))
        batches = backend.batches(splits, config.eval_batch_size)
        groups: dict[tuple[str, str, str], list[Cell]] = {}
        for cell, mode in todo:
            groups.setdefault((cell.corruption, cell.target, mode), []).append(cell)
        grid = self.config.grid
        for (corruption, _, mode), group in groups.items():
            random = corruption == CONFLICT or (
                corruption in CORRUPTIONS and CORRUPTIONS.facts(corruption).random
            )
            draws = grid.noise_draws if random else 1  # clean and missing-subset cells: 1
            seeds = [grid.eval_seed + k for k in range(draws)]
            transforms = [
                self._transform(info, cell, seed, splits) for cell in group for seed in seeds
            ]
            results = backend.evaluate(
                model, batches, info, transforms, weights=mode, seed=grid.eval_seed
            )
            for i, cell in enumerate(group):
                metrics = average_metrics(results[i * draws : (i + 1) * draws])
                key = self._record(identity, cell, mode, metrics)
                if cell.corruption == CLEAN:
                    self._copy_clean(self.results.rows[key], info)

    def _record(
        self, identity: dict[str, Any], cell: Cell, mode: str, metrics: dict[str, Any]
    ) -> CellKey:
        row = {**identity, **self.task.flat_row(metrics), "corruption": cell.corruption,
               "severity": float(cell.severity), "target": cell.target, "weights": mode}  # fmt: skip
        return self.results.add(row)

    def _transform(
        self, info: DatasetInfo, cell: Cell, seed: int, splits: DataSplits | None = None
    ) -> Callable[[Batch], Batch] | None:
        if cell.corruption == CLEAN:
            return None
        if cell.corruption == CONFLICT:
            from robustfusion.evaluation.conflict import ConflictTransform

            assert splits is not None and self.config.grid.conflict is not None
            return ConflictTransform(splits.test, info.num_classes, self.config.grid.conflict, seed)
        if cell.corruption == MISSING_SUBSET:
            subset = cell.subset

            def remove(batch: Batch) -> Batch:
                return remove_modalities(batch, info, subset, seed)

            return remove
        c, s, t = cell.corruption, cell.severity, cell.target

        def corrupt(batch: Batch) -> Batch:
            return corrupt_level(batch, info, c, s, t, seed)

        return corrupt

    def _copy_clean(self, row: dict[str, Any], info: DatasetInfo) -> None:
        """Severity 0 of every curve is the clean result (not a separate evaluation)."""
        mode = row.get("weights") or LEARNED
        for corruption in self.config.grid.severities:
            for target in self.config.grid.targets(info, corruption):
                key = cell_key(row["method"], int(row["seed"]), corruption, 0.0, target, mode)
                if key not in self.results:
                    self.results.add({**row, "corruption": corruption, "target": target})

    def _summary(self, config: TrainConfig, digest: str) -> dict[str, Any]:
        """The settings a run actually used (read back from its folder), for the report."""
        saved = Path(str(config.out)) / "config.yaml"
        used = TrainConfig.from_yaml(saved) if saved.is_file() else config.resolved()
        settings = used.to_dict()
        keep = ("method", "method_options", *TRAINING_SETTINGS, "seed")
        summary = {
            k: settings[k]
            for k in keep
            if k in settings and _HASHED_UNLESS.get(k, object()) != settings[k]
        }
        summary["modalities"] = settings.get("modalities")
        summary["config_hash"] = digest
        return summary

    def _unimodal_view(self, seeds: Sequence[int], modalities: Sequence[str]) -> str:
        path = self.out / UNIMODAL_FILE
        if path.is_file():
            return str(json.loads(path.read_text(encoding="utf-8"))["view"])
        seed = seeds[0]
        scores: dict[str, float] = {}
        with _threads(self.config.threads_per_job):
            for view in modalities:
                config = self.train_config("unimodal", seed, view)
                scores[view] = float(self._ensure_trained(config)[self.task.selection_key])
        best = max(modalities, key=lambda v: scores[v])
        write_json(path, {"view": best, "seed": seed, "val_accuracy": scores})
        return best

    def _meta(self, info: DatasetInfo, cells: list[Cell]) -> dict[str, Any]:
        config = self.config
        previous: dict[str, Any] = {}
        if (self.out / META_FILE).is_file():
            previous = json.loads((self.out / META_FILE).read_text(encoding="utf-8"))
        return {
            "dataset": info.name,
            "task": info.task,
            "modalities": list(info.modality_names),
            "methods": list(self._variants),
            "seeds": list(config.seeds),
            "weight_controls": config.weight_controls,
            "twins": {v.label: v.base_label for v in self._variants.values() if v.twin},
            "grid": {
                "severities": {k: list(v) for k, v in config.grid.severities.items()},
                "targets": {c: list(config.grid.targets(info, c)) for c in config.grid.severities},
                "skipped": config.grid.skipped(info),
                "missing_subsets": [c.target for c in cells if c.corruption == MISSING_SUBSET],
                "eval_seed": config.grid.eval_seed,
                "noise_draws": config.grid.noise_draws,
                **(
                    {"conflict": dataclasses.asdict(config.grid.conflict)}
                    if config.grid.conflict is not None
                    else {}
                ),
            },
            "base_config": {
                k: v for k, v in config.base.to_dict().items() if k not in ("out", "method", "seed")
            },
            "method_overrides": config.method_overrides,
            "jobs": config.jobs,
            "threads_per_job": config.threads_per_job,
            "runs": dict(previous.get("runs", {})),
        }


#: Corruptions whose draws depend on the evaluation seed (averaged over ``Grid.noise_draws``).


def average_metrics(draws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several evaluations of one cell (every scalar metric of the task, per-modality
    weights and unimodal figures; per-class lists element-wise); ``num_samples`` is that of one
    draw."""
    if len(draws) == 1:
        return draws[0]
    out: dict[str, Any] = {"num_samples": draws[0].get("num_samples", "")}
    fields = [(k, v) for k, v in draws[0].items() if k != "num_samples"]
    # scalars first, then per-modality dicts, then per-class lists (a stable sort)
    for key, first in sorted(
        fields, key=lambda kv: (isinstance(kv[1], dict), isinstance(kv[1], list))
    ):
        if isinstance(first, dict):  # mean weights, unimodal figures: per modality
            out[key] = {m: float(sum(d[key][m] for d in draws) / len(draws)) for m in first}
        elif isinstance(first, list):  # per-class figures
            out[key] = [
                float(sum(v) / len(draws)) for v in zip(*(d[key] for d in draws), strict=True)
            ]
        else:
            out[key] = float(sum(d[key] for d in draws) / len(draws))
    out["noise_draws"] = len(draws)
    return out


def _has_dynamic_weights(variant: MethodVariant) -> bool:
    from robustfusion.evaluation.variants import dynamic_parts

    return bool(dynamic_parts(variant.name))


class _threads:
    """Run a block with ``count`` torch intra-op threads, restoring the previous count."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)


def _worker_init(threads: int) -> None:
    keep_freed_memory()  # as the command line does in its own process
    torch.set_num_threads(threads)


def _run_task_in_worker(config: BenchmarkConfig, task: Job) -> dict[str, Any]:
    """A worker process's share: one run, trained and evaluated with the default backend."""
    benchmark = Benchmark(config, progress=False)
    benchmark.prepare()
    return benchmark.run_task(task)


def parse_list(text: str, flag: str, kind: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """``"a,b"`` -> ``("a", "b")``; a one-line ConfigError naming ``flag`` when malformed."""
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts) and any(parts):
        raise ConfigError(f"{flag} accepts a comma-separated list with no empty item, got {text!r}")
    parts = [p for p in parts if p]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError as error:
        raise ConfigError(f"{flag} must be a comma-separated list, got {text!r}") from error
    if not values:
        raise ConfigError(f"{flag} is empty: give a comma-separated list")
    return values
