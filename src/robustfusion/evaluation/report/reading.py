"""A benchmark folder read for reporting: the rows of ``results.csv`` indexed by cell,
``benchmark.json``, and the folder's task (:func:`folder_task`), whose metric specs drive every
table, summary and figure of the report.

Rows whose column ``weights`` is ``uniform`` or ``oracle`` (the same checkpoint evaluated with
swapped modality weights) and the uniform twins ``<method>~uniform`` feed only the "do the weights
matter?" section; every other table and figure shows the methods' own (``learned``) weights. A file
without the column holds only ``learned`` rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustfusion.errors import DataError
from robustfusion.evaluation.plots import TWIN_SUFFIX, Curve
from robustfusion.evaluation.report.statistics import mean_std
from robustfusion.evaluation.results import (
    CLEAN,
    LEARNED,
    META_FILE,
    MISSING_SUBSET,
    RESULTS_FILE,
    CellKey,
    row_key,
    task_of_columns,
)
from robustfusion.tasks import task_of
from robustfusion.tasks.base import MetricSpec, Task

#: The task of a results file whose task cannot be told (no row, no header, no record).
DEFAULT_TASK = "classification"

#: ``weights`` column values: the method's own weights, uniform ones, the oracle's.
UNIFORM, ORACLE = "uniform", "oracle"


def capitalised(title: str) -> str:
    """A metric's title at the start of a heading: ``accuracy`` → ``Accuracy``, ``macro-F1`` →
    ``Macro-F1``; a title whose second letter is a capital (``mIoU``, ``ECE``) stays as it is."""
    if len(title) > 1 and title[1].isupper():
        return title
    return title[:1].upper() + title[1:]


def plural(title: str) -> str:
    """A metric's title in the plural (``accuracy`` → ``accuracies``, ``mIoU`` → ``mIoUs``)."""
    if title.endswith("y") and title[-2:-1] not in tuple("aeiou"):
        return title[:-1] + "ies"
    return title + "s"


def weights_of(row: dict[str, str]) -> str:
    """The ``weights`` column of a row (``learned`` when the file has no such column)."""
    return row.get("weights") or LEARNED


def is_twin(method: str) -> bool:
    return method.endswith(TWIN_SUFFIX)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``results.csv``; a torn last line (no newline) is ignored, and of rows for the
    same cell (:func:`~robustfusion.evaluation.results.row_key`) the last one wins (a cell redone
    after a kill)."""
    raw = Path(path).read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    rows: dict[CellKey, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")):
        rows[row_key(row)] = row
    return list(rows.values())


def read_header(path: Path) -> list[str]:
    """The column names of a ``results.csv`` (empty for an empty file)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def folder_task(
    meta: dict[str, Any], header: Sequence[str], where: Path | str = RESULTS_FILE
) -> Task:
    """The task of a benchmark folder: the one ``benchmark.json`` records (``task``), else the one
    whose metrics are columns of ``results.csv`` (:func:`~robustfusion.evaluation.results.
    task_of_columns`); a file without a header is classification's."""
    if meta.get("task"):
        return task_of(str(meta["task"]))
    if not header:
        return task_of(DEFAULT_TASK)
    task = task_of_columns(list(header))
    if task is None:
        raise DataError(
            f"{where} is not a benchmark's results file (no task's metric columns): run "
            "robustfusion benchmark again or point at another folder"
        )
    return task


def task_of_rows(rows: Sequence[dict[str, str]]) -> Task:
    """The task whose metrics are columns of ``rows`` (classification's for no rows)."""
    return folder_task({}, list(rows[0]) if rows else [])


class Results:
    """The rows of ``results.csv`` indexed for the report, and their task (``task``: its metric
    specs; ``primary``: the spec of the metric the robustness summaries are computed on)."""

    def __init__(
        self, rows: list[dict[str, str]], methods: Sequence[str], task: Task | None = None
    ) -> None:
        self.rows = rows
        self.task: Task = task if task is not None else task_of_rows(rows)
        present = {r["method"] for r in rows}
        self.methods = [m for m in methods if m in present] + sorted(present - set(methods))
        self.seeds = sorted({int(r["seed"]) for r in rows})
        self.index: dict[tuple[str, int, str, str], dict[float, dict[str, str]]] = defaultdict(dict)
        for r in rows:
            key = (r["method"], int(r["seed"]), r["corruption"], r["target"])
            self.index[key][float(r["severity"])] = r

    def value(
        self, method: str, seed: int, corruption: str, target: str, severity: float, column: str
    ) -> float:
        row = self.index.get((method, seed, corruption, target), {}).get(severity)
        if row is None or row.get(column, "") in ("", "nan"):
            return math.nan
        return float(row[column])

    @property
    def primary(self) -> MetricSpec:
        """The spec of the task's primary metric (accuracy, mIoU)."""
        return self.task.primary_spec

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """Every metric of the task, in the order tables show them."""
        return self.task.metrics

    def curve(
        self, method: str, seed: int, corruption: str, target: str, column: str | None = None
    ) -> tuple[list[float], list[float]]:
        """Severities and the values of ``column`` (default: the primary metric) of one seed."""
        column = column or self.task.primary
        points = self.index.get((method, seed, corruption, target), {})
        xs = sorted(points)
        return xs, [float(points[x].get(column) or "nan") for x in xs]

    def seeds_of(self, method: str) -> list[int]:
        return sorted({s for (m, s, _, _) in self.index if m == method})

    def mean_curve(
        self, method: str, corruption: str, target: str, column: str | None = None
    ) -> Curve | None:
        """Mean ± std over seeds of ``column`` (default: the primary metric) vs severity."""
        per_seed = [
            self.curve(method, s, corruption, target, column) for s in self.seeds_of(method)
        ]
        per_seed = [c for c in per_seed if c[0]]
        if not per_seed:
            return None
        xs = sorted(set.intersection(*(set(c[0]) for c in per_seed)))
        if not xs:
            return None
        values = [[dict(zip(*c, strict=True))[x] for c in per_seed] for x in xs]
        stats = [mean_std(v) for v in values]
        return xs, [m for m, _ in stats], [s for _, s in stats]


class Folder:
    """A benchmark folder read for reporting: ``benchmark.json``, ``results.csv`` and its task."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        rows: list[dict[str, str]],
        task: Task | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.all_rows = rows
        self.task: Task = (
            task if task is not None else folder_task(meta, list(rows[0]) if rows else [], path)
        )
        main = [r for r in rows if weights_of(r) == LEARNED and not is_twin(r["method"])]
        self.results = Results(main, meta.get("methods", []), self.task)
        #: the uniform twins' own rows (``<method>~uniform``, learned = uniform weights)
        self.twins = Results(
            [r for r in rows if weights_of(r) == LEARNED and is_twin(r["method"])],
            [],
            self.task,
        )
        prefixes = ("weight_", self.task.unimodal_prefix)
        self.modalities: list[str] = meta.get("modalities") or sorted(
            {c.removeprefix(p) for r in rows for c in r for p in prefixes if c.startswith(p)}
        )
        self.severities: dict[str, list[float]] = meta.get("grid", {}).get("severities") or {
            c: sorted({float(r["severity"]) for r in main if r["corruption"] == c})
            for c in sorted({r["corruption"] for r in main} - {CLEAN, MISSING_SUBSET})
        }
        saved_targets = meta.get("grid", {}).get("targets") or ["all", "each"]
        self.targets: dict[str, list[str]] = (
            saved_targets
            if isinstance(saved_targets, dict)
            else {c: list(saved_targets) for c in self.severities}
        )

    @classmethod
    def read(cls, out: Path) -> Folder:
        out = Path(out)
        if not (out / RESULTS_FILE).is_file():
            raise DataError(
                f"{out} has no {RESULTS_FILE}: run robustfusion benchmark --out {out} first"
            )
        meta: dict[str, Any] = {}
        if (out / META_FILE).is_file():
            meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        header = read_header(out / RESULTS_FILE)
        task = folder_task(meta, header, out / RESULTS_FILE)
        return cls(out, meta, read_rows(out / RESULTS_FILE), task)
