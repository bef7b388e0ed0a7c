"""Named benchmark suites: several datasets, each with its own methods, seeds, epochs and grid,
run by one resumable command (``robustfusion benchmark --suite NAME --out DIR``).

A suite is a list of :class:`SuitePart`; each part is one ordinary benchmark folder
``DIR/<part name>/`` (resumable, reusing finished runs), and the suite writes one results page over
all of them. The settings of every part (epochs per dataset, grids) are chosen on validation
accuracy, never on test; where they come from is said in the part's ``note``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_json
from robustfusion.errors import ConfigError, UnknownNameError
from robustfusion.evaluation.benchmark import Benchmark, BenchmarkConfig
from robustfusion.evaluation.grids import Grid
from robustfusion.evaluation.report import PART_FILE
from robustfusion.training.config import TrainConfig

#: Every invocation of a suite in its folder, with its wall time (resumed suites add up).
SUITE_LOG = "suite.json"


@dataclass(frozen=True)
class SuitePart:
    """One dataset of a suite: a benchmark's settings.

    ``train`` holds TrainConfig settings (dataset, options, epochs, sizes); ``method_overrides``
    training settings per method label; ``reference`` figures from elsewhere to print beside ours
    (e.g. the official TMC code's accuracies), keyed by a description; ``group`` and ``compare``
    see below.
    """

    name: str
    train: dict[str, Any]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    grid: Grid
    note: str = ""
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    weight_controls: bool = True
    reference: dict[str, Any] = field(default_factory=dict)
    #: Which half of a suite split for honest tuning the part belongs to (e.g. ``development`` or
    #: ``evaluation``), shown on the results page; empty: none.
    group: str = ""
    #: Methods whose clean cost and per-modality noise gain against ``static`` the results page
    #: tabulates (:mod:`robustfusion.evaluation.report.claims`); empty: no such table.
    compare: tuple[str, ...] = ()

    def config(self, out: Path, jobs: int, threads_per_job: int = 1) -> BenchmarkConfig:
        return BenchmarkConfig(
            methods=self.methods,
            seeds=self.seeds,
            out=Path(out) / self.name,
            base=TrainConfig.from_dict(dict(self.train), source=f"suite part {self.name}"),
            grid=self.grid,
            method_overrides=self.method_overrides,
            jobs=jobs,
            threads_per_job=threads_per_job,
            weight_controls=self.weight_controls,
        )


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    parts: tuple[SuitePart, ...]


_SUITES: dict[str, Callable[[], Suite]] = {}


def register_suite(name: str) -> Callable[[Callable[[], Suite]], Callable[[], Suite]]:
    """Register a function building a suite (built lazily: its datasets load on use only)."""

    def decorator(build: Callable[[], Suite]) -> Callable[[], Suite]:
        _SUITES[name] = build
        return build

    return decorator


def get_suite(name: str) -> Suite:
    _load_builtin_suites()
    if name not in _SUITES:
        raise UnknownNameError(
            f"unknown suite {name!r}: choose one of {', '.join(sorted(_SUITES))}"
        )
    return _SUITES[name]()


def suite_names() -> list[str]:
    _load_builtin_suites()
    return sorted(_SUITES)


def _load_builtin_suites() -> None:
    import robustfusion.evaluation.suite_definitions  # noqa: F401 - registers the suites


def run_suite(
    name: str,
    out: Path,
    *,
    jobs: int = 1,
    threads_per_job: int = 1,
    parts: tuple[str, ...] | None = None,
    progress: bool = True,
    results_page: Path | None = None,
    command: str = "",
) -> dict[str, Path]:
    """Run (or resume) every part of suite ``name`` into ``out/<part>``; returns their reports.

    With ``results_page``, also writes one page over all parts (see
    :func:`robustfusion.evaluation.report.write_results_page`), headed by ``command`` and the
    wall time of every invocation in ``out`` added up (``out/suite.json``). ``parts`` restricts
    the run to some parts (by name).
    """
    suite = get_suite(name)
    chosen = suite.parts
    if parts:
        unknown = sorted(set(parts) - {p.name for p in suite.parts})
        if unknown:
            raise ConfigError(
                f"suite {name!r} has no part {unknown[0]!r}: choose from "
                f"{', '.join(p.name for p in suite.parts)}"
            )
        chosen = tuple(p for p in suite.parts if p.name in parts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = _read_log(out)
    started = time.perf_counter()
    reports: dict[str, Path] = {}
    try:
        for part in chosen:
            write_json(
                out / part.name / PART_FILE,
                {
                    "name": part.name,
                    "note": part.note,
                    "reference": part.reference,
                    "group": part.group,
                    "compare": list(part.compare),
                },
            )
            benchmark = Benchmark(part.config(out, jobs, threads_per_job), progress=progress)
            reports[part.name] = benchmark.run()
    finally:
        log["invocations"].append(
            {
                "command": command,
                "parts": [p.name for p in chosen],
                "jobs": jobs,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        write_json(out / SUITE_LOG, log)
    if results_page is not None:
        from robustfusion.evaluation.report import write_results_page

        write_results_page(
            [out / p.name for p in suite.parts if (out / p.name).is_dir()],
            results_page,
            command=command,
            wall_seconds=sum(i["seconds"] for i in log["invocations"]),
        )
    return reports


def _read_log(out: Path) -> dict[str, Any]:
    """``suite.json``: every invocation's command and wall time (a resumed suite adds up)."""
    path = out / SUITE_LOG
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"invocations": []}
