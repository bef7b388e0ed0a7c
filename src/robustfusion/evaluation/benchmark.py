"""The robustness benchmark: train every (method, seed) once, evaluate it over a grid, report.

Cells are trainings ``(method, seed)`` (run folders ``DIR/runs/<method>-s<seed>/``, skipped when
their ``metrics.json`` exists, resumed from their last checkpoint otherwise) and evaluations
``(method, seed, corruption, severity, target)``. Every finished evaluation cell is appended to
``DIR/results.csv`` as one line in a single write (see :class:`ResultsTable`), and the file is read
back on start, so a killed benchmark redoes nothing that finished. Severity 0 of every curve is the run's clean evaluation (computed once). The
missing-modality table uses rows ``corruption = missing_subset``, ``target = the absent
modalities joined by '+'``.

``unimodal`` (best view): for the first seed one unimodal run per modality; the modality with
the best validation accuracy is kept (``DIR/unimodal_view.json``) and trained for the other seeds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_json, write_text
from robustfusion.data import DatasetInfo, DataSplits
from robustfusion.errors import ConfigError, DataError
from robustfusion.evaluation.grids import (
    Grid,
    TransformedDataset,
    check_grid,
    corrupt_level,
    missing_subsets,
    remove_modalities,
    subset_name,
)
from robustfusion.training.config import TrainConfig

RESULTS_FILE = "results.csv"
META_FILE = "benchmark.json"
UNIMODAL_FILE = "unimodal_view.json"
RUNS_DIR = "runs"
CLEAN = "none"
MISSING_SUBSET = "missing_subset"
BASE_COLUMNS = (
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
    "view",
    "num_samples",
)
#: Training settings of a method that differ from the base config unless the user sets them:
#: TMC's own optimiser settings (Han et al.: Adam, lr 3e-3, weight decay 1e-5).
METHOD_TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "tmc": {"lr": 3e-3, "weight_decay": 1e-5},
}

CellKey = tuple[str, int, str, str, str]


def cell_key(method: str, seed: int, corruption: str, severity: float, target: str) -> CellKey:
    return (method, int(seed), corruption, _fmt(severity), target)


def _fmt(severity: float | str) -> str:
    return repr(float(severity))


@dataclass
class Backend:
    """The functions the benchmark calls (injectable: tests pass fakes)."""

    info: Callable[[TrainConfig], DatasetInfo]
    train: Callable[[TrainConfig], dict[str, Any]]
    load: Callable[[Path], tuple[Any, DataSplits, TrainConfig]]
    evaluate: Callable[..., dict[str, Any]]


def default_backend() -> Backend:
    """Training with :func:`robustfusion.training.run.train` (resumable), evaluation with
    :func:`robustfusion.evaluation.evaluate.evaluate_model`."""
    from robustfusion.evaluation.evaluate import evaluate_model
    from robustfusion.training.build import load_data
    from robustfusion.training.run import load_run, train

    return Backend(
        info=lambda config: load_data(config).info,
        train=lambda config: train(config, resume=True, progress=False),
        load=load_run,
        evaluate=evaluate_model,
    )


@dataclass
class BenchmarkConfig:
    """Methods, seeds, the base training config, per-method overrides and the grid."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    out: Path
    base: TrainConfig
    grid: Grid = field(default_factory=Grid)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_batch_size: int = 512
    #: Independent (method, seed) cells trained and evaluated in parallel worker processes.
    jobs: int = 1
    #: "Do the weights matter?": train the uniform twin of every method with dynamic weights and
    #: evaluate every checkpoint with learned, uniform and oracle weights.
    weight_controls: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}")
        if not self.methods:
            raise ConfigError("--methods is empty: give e.g. static,tmc,qmf")
        if not self.seeds:
            raise ConfigError("--seeds is empty: give e.g. 0,1,2")
        if len(set(self.methods)) != len(self.methods) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("--methods and --seeds must not repeat a value")
        check_grid(self.grid, list(self.grid.severities))


class ResultsTable:
    """``results.csv``: a header, then one line per cell, appended with a single ``write``.

    A line is complete or absent: a process killed mid-write leaves at most a torn last line
    without its newline, which the next reader drops (rewriting the file atomically). Columns are
    fixed when the file is created (``columns``, or the first row's keys).
    """

    def __init__(self, path: Path, columns: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.rows: dict[CellKey, dict[str, str]] = {}
        self.columns: list[str] = list(columns) if columns else []
        if self.path.is_file():
            self._read(columns)

    def _read(self, expected: Sequence[str] | None) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]  # a torn last line: that cell is redone
            write_text(self.path, raw.decode("utf-8"))
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
        header = list(reader.fieldnames or [])
        missing = [c for c in (*BASE_COLUMNS, *(expected or ())) if c not in header]
        if missing:
            raise DataError(
                f"{self.path} is not this benchmark's results file (no column {missing[0]}): "
                "use another --out or delete it"
            )
        self.columns = header
        for row in reader:
            self.rows[_row_key(row)] = row

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def add(self, row: dict[str, Any]) -> None:
        """Record a cell and append its line to the file (creating it with its header)."""
        text = {k: _text(v) for k, v in row.items()}
        if not self.columns:
            self.columns = list(BASE_COLUMNS) + [k for k in text if k not in BASE_COLUMNS]
        if not self.path.is_file():
            write_text(self.path, _csv_line(self.columns, {c: c for c in self.columns}))
        self.rows[_row_key(text)] = text
        line = _csv_line(self.columns, text).encode("utf-8")
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(handle, line)
        finally:
            os.close(handle)

    def records(self) -> list[dict[str, str]]:
        return list(self.rows.values())


def _csv_line(columns: Sequence[str], row: dict[str, str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([row.get(c, "") for c in columns])
    return buffer.getvalue()


def _row_key(row: dict[str, str]) -> CellKey:
    return cell_key(
        row["method"], int(row["seed"]), row["corruption"], float(row["severity"]), row["target"]
    )


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    return str(value)


@dataclass
class Cell:
    corruption: str
    severity: float
    target: str
    subset: tuple[str, ...] = ()


def evaluation_cells(grid: Grid, modalities: Sequence[str]) -> list[Cell]:
    """Clean first, then every (corruption, target, severity > 0), then the missing subsets."""
    cells = [Cell(CLEAN, 0.0, "all")]
    for corruption, severities in grid.severities.items():
        for target in grid.targets(modalities, corruption):
            cells += [Cell(corruption, float(s), target) for s in severities if s > 0]
    for subset in missing_subsets(modalities, grid.max_missing_subsets, grid.eval_seed):
        cells.append(Cell(MISSING_SUBSET, 1.0, subset_name(subset), tuple(subset)))
    return cells


def run_dir(out: Path, method: str, seed: int, view: str | None = None) -> Path:
    name = f"{method}-{view}-s{seed}" if view else f"{method}-s{seed}"
    return Path(out) / RUNS_DIR / name


class Benchmark:
    """Runs (or resumes) a benchmark; see the module docstring."""

    def __init__(
        self,
        config: BenchmarkConfig,
        backend: Backend | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.backend = backend or default_backend()
        self.progress = progress
        self.out = Path(config.out)
        self.results = ResultsTable(self.out / RESULTS_FILE)  # replaced once the columns are known
        self.modalities: tuple[str, ...] = ()

    # -------------------------------------------------------------- configs
    def train_config(self, method: str, seed: int, view: str | None = None) -> TrainConfig:
        overrides: dict[str, Any] = dict(METHOD_TRAINING_DEFAULTS.get(method, {}))
        overrides.update(self.config.method_overrides.get(method, {}))
        options = dict(overrides.pop("method_options", {}) or {})
        if view is not None:
            options.setdefault("unimodal", {})["modality"] = view
        return self.config.base.with_overrides(
            method=method,
            seed=seed,
            out=str(run_dir(self.out, method, seed, view)),
            method_options=options or None,
            **overrides,
        )

    # -------------------------------------------------------------- cells
    def _trained(self, config: TrainConfig) -> dict[str, Any]:
        metrics_path = Path(str(config.out)) / "metrics.json"
        if metrics_path.is_file():
            return json.loads(metrics_path.read_text(encoding="utf-8"))
        return self.backend.train(config)

    def _unimodal_view(self, seeds: Sequence[int], modalities: Sequence[str], bar: Any) -> str:
        path = self.out / UNIMODAL_FILE
        if path.is_file():
            return str(json.loads(path.read_text(encoding="utf-8"))["view"])
        seed = seeds[0]
        scores: dict[str, float] = {}
        for view in modalities:
            bar.set_postfix_str(f"train unimodal[{view}] seed {seed}")
            scores[view] = float(
                self._trained(self.train_config("unimodal", seed, view))["val_accuracy"]
            )
        best = max(modalities, key=lambda v: scores[v])
        write_json(path, {"view": best, "seed": seed, "val_accuracy": scores})
        return best

    def run(self) -> Path:
        """Train and evaluate every missing cell, then write ``report.md``; returns its path."""
        from tqdm.auto import tqdm

        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        info = self.backend.info(
            config.base.with_overrides(seed=config.seeds[0], out=str(self.out))
        )
        modalities = info.modality_names
        self.modalities = modalities
        columns = [*BASE_COLUMNS, *(f"weight_{m}" for m in modalities)]
        self.results = ResultsTable(
            self.out / RESULTS_FILE, columns + [f"uacc_{m}" for m in modalities]
        )
        cells = evaluation_cells(config.grid, modalities)
        total = len(config.methods) * len(config.seeds) * (1 + len(cells))
        meta = self._meta(info, cells)
        write_json(self.out / META_FILE, meta)
        with tqdm(total=total, disable=not self.progress, desc="benchmark", unit="cell") as bar:
            for method in config.methods:
                view = None
                if method == "unimodal":
                    view = self._unimodal_view(config.seeds, modalities, bar)
                    meta["unimodal_view"] = view
                    write_json(self.out / META_FILE, meta)
                for seed in config.seeds:
                    self._run_one(method, seed, view, info, cells, bar)
        from robustfusion.evaluation.report import write_report

        return write_report(self.out)

    def _run_one(
        self,
        method: str,
        seed: int,
        view: str | None,
        info: DatasetInfo,
        cells: list[Cell],
        bar: Any,
    ) -> None:
        todo = [
            c
            for c in cells
            if cell_key(method, seed, c.corruption, c.severity, c.target) not in self.results
        ]
        clean_key = cell_key(method, seed, CLEAN, 0.0, "all")
        train_config = self.train_config(method, seed, view)
        bar.set_postfix_str(f"train {method} seed {seed}")
        self._trained(train_config)
        bar.update(1)
        bar.update(len(cells) - len(todo))
        if clean_key in self.results:  # a kill may have come between the clean row and its copies
            self._copy_clean(self.results.rows[clean_key])
        if not todo:
            return
        model, splits, _ = self.backend.load(Path(str(train_config.out)))
        identity = {
            "dataset": info.name,
            "method": method,
            "fusion": train_config.fusion,
            "seed": seed,
            "view": view or "",
        }
        for cell in todo:
            bar.set_postfix_str(
                f"{method} s{seed} {cell.corruption} {cell.target} {cell.severity:g}"
            )
            metrics = self._evaluate(model, splits, info, cell)
            row = {**identity, **_flatten(metrics), "corruption": cell.corruption,
                   "severity": float(cell.severity), "target": cell.target}  # fmt: skip
            self.results.add(row)
            if cell.corruption == CLEAN:
                self._copy_clean(row)
            bar.update(1)

    def _copy_clean(self, row: dict[str, Any]) -> None:
        """Severity 0 of every curve is the clean result (not a separate evaluation)."""
        for corruption in self.config.grid.severities:
            for target in self.config.grid.targets(self.modalities, corruption):
                key = cell_key(row["method"], int(row["seed"]), corruption, 0.0, target)
                if key not in self.results:
                    self.results.add({**row, "corruption": corruption, "target": target})

    def _evaluate(
        self, model: Any, splits: DataSplits, info: DatasetInfo, cell: Cell
    ) -> dict[str, Any]:
        seed = self.config.grid.eval_seed
        dataset: Any = splits.test
        if cell.corruption == MISSING_SUBSET:
            subset = cell.subset
            dataset = TransformedDataset(
                splits.test, lambda batch: remove_modalities(batch, info, subset, seed)
            )
        elif cell.corruption != CLEAN:
            c, s, t = cell.corruption, cell.severity, cell.target
            dataset = TransformedDataset(
                splits.test, lambda batch: corrupt_level(batch, info, c, s, t, seed)
            )
        return self.backend.evaluate(
            model, dataset, info, seed=seed, batch_size=self.config.eval_batch_size
        )

    def _meta(self, info: DatasetInfo, cells: list[Cell]) -> dict[str, Any]:
        config = self.config
        return {
            "dataset": info.name,
            "modalities": list(info.modality_names),
            "methods": list(config.methods),
            "seeds": list(config.seeds),
            "grid": {
                "severities": {k: list(v) for k, v in config.grid.severities.items()},
                "targets": {
                    c: list(config.grid.targets(info.modality_names, c))
                    for c in config.grid.severities
                },
                "missing_subsets": [c.target for c in cells if c.corruption == MISSING_SUBSET],
                "eval_seed": config.grid.eval_seed,
            },
            "base_config": {
                k: v for k, v in config.base.to_dict().items() if k not in ("out", "method", "seed")
            },
            "method_training_defaults": METHOD_TRAINING_DEFAULTS,
            "method_overrides": config.method_overrides,
        }


def _flatten(metrics: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's metrics as flat CSV columns (``weight_<m>``, ``uacc_<m>``)."""
    row: dict[str, Any] = {k: metrics.get(k, math.nan) for k in ("accuracy", "macro_f1", "ece")}
    row["num_samples"] = metrics.get("num_samples", "")
    for m, value in (metrics.get("mean_weight") or {}).items():
        row[f"weight_{m}"] = float(value)
    for m, value in (metrics.get("unimodal_accuracy") or {}).items():
        row[f"uacc_{m}"] = float(value)
    return row


def parse_list(text: str, flag: str, kind: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """``"a,b"`` -> ``("a", "b")``; a one-line ConfigError naming ``flag`` when malformed."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError as error:
        raise ConfigError(f"{flag} must be a comma-separated list, got {text!r}") from error
    if not values:
        raise ConfigError(f"{flag} is empty: give a comma-separated list")
    return values


def iter_rows(path: Path) -> Iterable[dict[str, str]]:
    """The rows of a ``results.csv``."""
    return ResultsTable(path).records()
