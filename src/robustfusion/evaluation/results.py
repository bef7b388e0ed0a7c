"""The benchmark's results file, ``results.csv``: its columns, cell keys and appends.

Shared by the benchmark (which writes it) and the report (which reads it), so that neither
imports the other. One line per evaluated cell ``(method, seed, corruption, severity, target,
weights)``; ``config_hash`` names the training configuration the row was measured on, so that rows
of a run that has since been retrained with other settings are recognised as stale.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_text
from robustfusion.errors import DataError
from robustfusion.tasks.base import Task

RESULTS_FILE = "results.csv"
META_FILE = "benchmark.json"
#: ``corruption`` of the clean evaluation (severity 0, target ``all``).
CLEAN = "none"
#: ``corruption`` of the missing-modality rows: ``target`` names the absent modalities joined by '+'.
MISSING_SUBSET = "missing_subset"
#: ``corruption`` of the RCML conflictive test set (``benchmark --conflict``; severity 1, target
#: ``all``; see :mod:`robustfusion.evaluation.conflict`).
CONFLICT = "conflict"
#: ``weights`` of every ordinary row; ``uniform``/``oracle`` rows are the same checkpoint evaluated
#: with swapped weights (``--weight-controls``).
LEARNED = "learned"
#: The columns that identify a cell (and its training), before the task's columns
#: (:meth:`robustfusion.tasks.base.Task.result_columns`: metrics, ``view``, ``num_samples``,
#: ``config_hash``, ``weight_<m>``, the unimodal figures).
IDENTITY_COLUMNS = (
    "dataset",
    "method",
    "fusion",
    "seed",
    "corruption",
    "severity",
    "target",
    "weights",
)
#: Training settings a benchmark records per run and its report states, as the runs used them.
TRAINING_SETTINGS = (
    "fusion",
    "decoder",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "gradient_clip_val",
    "hidden_dim",
    "feature_dim",
    "precision",
)
#: Columns a results file must have to be read, besides one task's metrics (files written before
#: ``weights`` and ``config_hash`` existed are read with ``weights = learned`` and no hash).
REQUIRED_COLUMNS = tuple(c for c in IDENTITY_COLUMNS if c != "weights")


def results_columns(task: Task, modalities: Sequence[str]) -> list[str]:
    """Every column of a ``results.csv`` for ``task`` on these modalities, in file order."""
    return [*IDENTITY_COLUMNS, *task.result_columns(modalities)]


def task_of_columns(header: Sequence[str]) -> Task | None:
    """The registered task whose metrics are all columns of ``header`` (``None``: none is)."""
    from robustfusion.registry import TASKS

    for entry in TASKS:
        if all(name in header for name in entry.factory.metric_names):
            return entry.factory
    return None


#: The identity of an evaluated cell: (method, seed, corruption, severity, target, weights).
CellKey = tuple[str, int, str, str, str, str]


def cell_key(
    method: str, seed: int, corruption: str, severity: float, target: str, weights: str = LEARNED
) -> CellKey:
    """The one definition of a cell's identity (the benchmark's resume and the report's reading
    both key by it): the seed as an int and the severity as ``repr(float)``, so that ``1``,
    ``1.0`` and ``"1.0"`` name the same cell."""
    return (method, int(seed), corruption, repr(float(severity)), target, weights)


def row_key(row: dict[str, str]) -> CellKey:
    """:func:`cell_key` of a ``results.csv`` row (``weights`` empty or absent: ``learned``)."""
    return cell_key(
        row["method"],
        int(row["seed"]),
        row["corruption"],
        float(row["severity"]),
        row["target"],
        row.get("weights") or LEARNED,
    )


class ResultsTable:
    """``results.csv``: a header, then one line per cell, appended with a single ``write``.

    A line is complete or absent: a process killed mid-write leaves at most a torn last line
    without its newline, which the next reader drops (rewriting the file atomically). Several
    processes may append to one file (one ``os.write`` per line on an ``O_APPEND`` descriptor).
    Columns are fixed when the file is created (``columns``, or the first row's keys).
    """

    def __init__(self, path: Path, columns: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.rows: dict[CellKey, dict[str, str]] = {}
        self.columns: list[str] = list(columns) if columns else []
        #: The task whose metrics the file holds (known once it is read).
        self.task: Task | None = task_of_columns(self.columns) if self.columns else None
        if self.path.is_file():
            self._read(columns)

    def _read(self, expected: Sequence[str] | None) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]  # a torn last line: that cell is redone
            write_text(self.path, raw.decode("utf-8"))
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
        header = list(reader.fieldnames or [])
        missing = [c for c in (*REQUIRED_COLUMNS, *(expected or ())) if c not in header]
        if missing:
            raise DataError(
                f"{self.path} is not this benchmark's results file (no column {missing[0]}): "
                "use another --out or delete it"
            )
        self.task = task_of_columns(header)
        if self.task is None:
            raise DataError(
                f"{self.path} is not a benchmark's results file (no task's metric columns): use "
                "another --out or delete it"
            )
        self.columns = header
        for row in reader:
            row.setdefault("weights", LEARNED)
            row["weights"] = row["weights"] or LEARNED
            self.rows[row_key(row)] = row

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def ensure_file(self) -> None:
        """Create the file with its header (once the columns are known)."""
        if not self.path.is_file():
            write_text(self.path, csv_line(self.columns, {c: c for c in self.columns}))

    def add(self, row: dict[str, Any]) -> CellKey:
        """Record a cell and append its line to the file (creating it with its header); returns
        the cell's key."""
        text = {k: _text(v) for k, v in row.items()}
        text.setdefault("weights", LEARNED)
        if not self.columns:
            self.columns = list(text)
        self.ensure_file()
        key = row_key(text)
        self.rows[key] = text
        append_line(self.path, csv_line(self.columns, text))
        return key

    def drop(self, keep: Any) -> int:
        """Remove every row for which ``keep(row)`` is false, rewriting the file atomically;
        returns how many rows were dropped."""
        stale = [key for key, row in self.rows.items() if not keep(row)]
        if not stale:
            return 0
        for key in stale:
            del self.rows[key]
        text = csv_line(self.columns, {c: c for c in self.columns})
        text += "".join(csv_line(self.columns, row) for row in self.rows.values())
        write_text(self.path, text)
        return len(stale)

    def records(self) -> list[dict[str, str]]:
        return list(self.rows.values())


def append_line(path: Path, line: str) -> None:
    """Append one complete line with a single ``write`` (safe with several appending processes)."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(handle, line.encode("utf-8"))
    finally:
        os.close(handle)


def csv_line(columns: Sequence[str], row: dict[str, str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([row.get(c, "") for c in columns])
    return buffer.getvalue()


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    return str(value)


def iter_rows(path: Path) -> Iterable[dict[str, str]]:
    """The rows of a ``results.csv``."""
    return ResultsTable(path).records()
