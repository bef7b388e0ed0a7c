"""A benchmark folder read for reporting: the rows of ``results.csv`` indexed by cell, and
``benchmark.json``.

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
)

#: ``weights`` column values: the method's own weights, uniform ones, the oracle's.
UNIFORM, ORACLE = "uniform", "oracle"


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


class Results:
    """The rows of ``results.csv`` indexed for the report."""

    def __init__(self, rows: list[dict[str, str]], methods: Sequence[str]) -> None:
        self.rows = rows
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

    def curve(
        self, method: str, seed: int, corruption: str, target: str, column: str = "accuracy"
    ) -> tuple[list[float], list[float]]:
        points = self.index.get((method, seed, corruption, target), {})
        xs = sorted(points)
        return xs, [float(points[x].get(column) or "nan") for x in xs]

    def seeds_of(self, method: str) -> list[int]:
        return sorted({s for (m, s, _, _) in self.index if m == method})

    def mean_curve(
        self, method: str, corruption: str, target: str, column: str = "accuracy"
    ) -> Curve | None:
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
    """A benchmark folder read for reporting: ``benchmark.json`` and ``results.csv``."""

    def __init__(self, path: Path, meta: dict[str, Any], rows: list[dict[str, str]]) -> None:
        self.path = path
        self.meta = meta
        self.all_rows = rows
        main = [r for r in rows if weights_of(r) == LEARNED and not is_twin(r["method"])]
        self.results = Results(main, meta.get("methods", []))
        self.modalities: list[str] = meta.get("modalities") or sorted(
            {c.removeprefix("weight_") for r in rows for c in r if c.startswith("weight_")}
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
        return cls(out, meta, read_rows(out / RESULTS_FILE))
