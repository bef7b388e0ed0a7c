"""``report.md`` of a benchmark folder: clean accuracy, robustness summary (normalised AUC),
accuracy and modality-weight curves, the missing-modality table (PCR) and the grids used.

Normalised AUC (MultiBench-style): ``nAUC = integral of accuracy over severity / (s_max - s_min)``
by the trapezoid rule, over the grid's severities including the clean 0: the mean accuracy over
the severity range, 1 for a perfect model at every severity. PCR (performance collapse rate) of
an absent subset ``S``: ``(A_full - A_without_S) / A_full`` per seed, then mean over seeds.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_text
from robustfusion.errors import DataError
from robustfusion.evaluation import grids
from robustfusion.evaluation.results import (
    CLEAN,
    META_FILE,
    MISSING_SUBSET,
    RESULTS_FILE,
    iter_rows,
)
from robustfusion.evaluation.plots import Curve, plot_panels

REPORT_FILE = "report.md"
FIGURES_DIR = "figures"


def normalised_auc(severities: Sequence[float], accuracies: Sequence[float]) -> float:
    """Trapezoid area under accuracy-vs-severity divided by the severity range."""
    points = sorted(zip(severities, accuracies, strict=True))
    if len(points) < 2:
        return points[0][1] if points else math.nan
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    return area / (points[-1][0] - points[0][0])


def pcr(full: float, missing: float) -> float:
    """Performance collapse rate ``(A_full - A_missing) / A_full``."""
    return (full - missing) / full if full > 0 else math.nan


def _stats(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.pstdev(finite) if len(finite) > 1 else 0.0


def _pm(values: Sequence[float], digits: int = 4) -> str:
    mean, std = _stats(values)
    return "n/a" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


class Results:
    """The rows of ``results.csv`` indexed for the report."""

    def __init__(self, rows: list[dict[str, str]], methods: Sequence[str]) -> None:
        # rows with swapped weights (``--weight-controls``) are not part of the main tables
        rows = [r for r in rows if (r.get("weights") or "learned") == "learned"]
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
        stats = [_stats(v) for v in values]
        return xs, [m for m, _ in stats], [s for _, s in stats]


def write_report(out: Path) -> Path:
    """Write ``out/report.md`` and ``out/figures/*.png`` from ``results.csv`` and ``benchmark.json``."""
    out = Path(out)
    if not (out / RESULTS_FILE).is_file():
        raise DataError(
            f"{out} has no {RESULTS_FILE}: run robustfusion benchmark --out {out} first"
        )
    meta: dict[str, Any] = {}
    if (out / META_FILE).is_file():
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    results = Results(list(iter_rows(out / RESULTS_FILE)), meta.get("methods", []))
    modalities = meta.get("modalities") or sorted(
        {c.removeprefix("weight_") for r in results.rows for c in r if c.startswith("weight_")}
    )
    severities: dict[str, list[float]] = meta.get("grid", {}).get("severities") or {
        c: sorted({float(r["severity"]) for r in results.rows if r["corruption"] == c})
        for c in {r["corruption"] for r in results.rows} - {CLEAN, MISSING_SUBSET}
    }
    saved_targets = meta.get("grid", {}).get("targets") or ["all", "each"]
    targets: dict[str, list[str]] = (
        saved_targets
        if isinstance(saved_targets, dict)
        else {c: list(saved_targets) for c in severities}
    )
    lines = [f"# Robustness benchmark: {meta.get('dataset', '?')}", ""]
    lines += _overview(meta, results)
    lines += _clean_table(results)
    lines += _robustness_table(results, severities)
    lines += _curves(out, results, severities, targets)
    lines += _weight_curves(out, results, severities, modalities, targets)
    lines += _missing_table(results)
    lines += _grid_section(meta, severities, targets)
    path = out / REPORT_FILE
    write_text(path, "\n".join(lines) + "\n")
    return path


def _overview(meta: dict[str, Any], results: Results) -> list[str]:
    base = meta.get("base_config", {})
    lines = [
        f"Methods: {', '.join(results.methods)}; seeds: {', '.join(map(str, results.seeds))}; "
        f"test split of each seed's run; model selected on validation accuracy.",
        "",
    ]
    if base:
        keys = ("fusion", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "hidden_dim")
        lines += ["Training: " + ", ".join(f"{k} {base.get(k)}" for k in keys if k in base) + "."]
        overrides = {**meta.get("method_training_defaults", {}), **meta.get("method_overrides", {})}
        if overrides:
            lines += [f"Per-method training settings: `{json.dumps(overrides, sort_keys=True)}`."]
        lines += [""]
    if meta.get("unimodal_view"):
        lines += [
            f"`unimodal` is the best single modality, **{meta['unimodal_view']}**, chosen by "
            "validation accuracy of one unimodal run per modality (first seed), then trained "
            "for every seed.",
            "",
        ]
    return lines


def _clean_table(results: Results) -> list[str]:
    lines = [
        "## Clean test accuracy",
        "",
        "| method | accuracy | macro-F1 | ECE | seeds |",
        "|---|---|---|---|---|",
    ]
    for m in results.methods:
        seeds = results.seeds_of(m)
        acc = [results.value(m, s, CLEAN, "all", 0.0, "accuracy") for s in seeds]
        f1 = [results.value(m, s, CLEAN, "all", 0.0, "macro_f1") for s in seeds]
        ece = [results.value(m, s, CLEAN, "all", 0.0, "ece") for s in seeds]
        lines.append(f"| {m} | {_pm(acc)} | {_pm(f1)} | {_pm(ece)} | {len(seeds)} |")
    return lines + [""]


def robustness_summary(
    results: Results, severities: dict[str, list[float]]
) -> dict[str, dict[str, list[float]]]:
    """``{method: {"corruption/target": [nAUC per seed]}}`` for targets all and each."""
    summary: dict[str, dict[str, list[float]]] = {}
    for m in results.methods:
        summary[m] = {}
        for corruption in severities:
            for target in ("all", "each"):
                values = []
                for s in results.seeds_of(m):
                    xs, ys = results.curve(m, s, corruption, target)
                    if len(xs) >= 2:
                        values.append(normalised_auc(xs, ys))
                if values:
                    summary[m][f"{corruption}/{target}"] = values
    return summary


def _robustness_table(results: Results, severities: dict[str, list[float]]) -> list[str]:
    summary = robustness_summary(results, severities)
    columns = sorted(
        {c for per in summary.values() for c in per},
        key=lambda c: (c.split("/")[0], c.split("/")[1] != "all"),
    )
    if not columns:
        return []
    lines = [
        "## Robustness summary (normalised AUC of accuracy vs severity)",
        "",
        "Mean accuracy over each severity range (trapezoid rule, clean point included); `mean` "
        "averages the columns per seed. Mean ± std over seeds.",
        "",
        "| method | " + " | ".join(columns) + " | mean |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for m in results.methods:
        per = summary.get(m, {})
        cells = [_pm(per.get(c, [])) for c in columns]
        seeds = len(results.seeds_of(m))
        means = [
            statistics.fmean([per[c][i] for c in columns if c in per and i < len(per[c])])
            for i in range(seeds)
            if any(c in per and i < len(per[c]) for c in columns)
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_pm(means)} |")
    return lines + [""]


def _curves(
    out: Path, results: Results, severities: dict[str, list[float]], targets: dict[str, list[str]]
) -> list[str]:
    lines = ["## Accuracy vs severity", ""]
    for corruption in severities:
        panels: dict[str, dict[str, Curve]] = {}
        for target in targets.get(corruption, ["all", "each"]):
            curves = {
                m: c for m in results.methods if (c := results.mean_curve(m, corruption, target))
            }
            if curves:
                panels[f"target: {target}"] = curves
        if not panels:
            continue
        name = f"{FIGURES_DIR}/accuracy_{corruption}.png"
        plot_panels(
            panels,
            out / name,
            title=f"{corruption}: test accuracy (mean ± std over seeds)",
            xlabel="severity",
            ylabel="accuracy",
        )
        lines += [f"![accuracy vs {corruption} severity]({name})", ""]
    return lines


def _weight_curves(
    out: Path,
    results: Results,
    severities: dict[str, list[float]],
    modalities: Sequence[str],
    targets: dict[str, list[str]],
) -> list[str]:
    if not any(m in t for t in targets.values() for m in modalities):
        return []
    lines = [
        "## Weight of the corrupted modality",
        "",
        "Mean fusion weight (`FusionOutput.weights`, normalised to sum 1) of modality *m* when "
        "only *m* is corrupted, vs severity. Static-weight methods stay flat at 1/M.",
        "",
    ]
    for corruption in severities:
        if corruption == "missing":
            continue  # an absent modality's weight is 0 by definition
        panels: dict[str, dict[str, Curve]] = {}
        for m in [m for m in modalities if m in targets.get(corruption, [])]:
            curves = {
                method: c
                for method in results.methods
                if (c := results.mean_curve(method, corruption, m, f"weight_{m}"))
                and not all(math.isnan(v) for v in c[1])
            }
            if curves:
                panels[f"{m} corrupted: weight of {m}"] = curves
        if not panels:
            continue
        name = f"{FIGURES_DIR}/weight_{corruption}.png"
        plot_panels(
            panels,
            out / name,
            title=f"{corruption}: weight of the corrupted modality",
            xlabel="severity",
            ylabel="mean weight",
        )
        lines += [f"![weight vs {corruption} severity]({name})", ""]
    return lines


def _missing_table(results: Results) -> list[str]:
    subsets = sorted(
        {r["target"] for r in results.rows if r["corruption"] == MISSING_SUBSET},
        key=lambda t: (t.count("+"), t),
    )
    if not subsets:
        return []
    lines = [
        "## Missing modalities (PCR)",
        "",
        "Test accuracy with the listed modalities absent for every sample, and in brackets the "
        "performance collapse rate PCR = (A_full - A_missing) / A_full (mean over seeds; lower "
        "is better).",
        "",
        "| absent | " + " | ".join(results.methods) + " |",
        "|---|" + "---|" * len(results.methods),
    ]
    averages: dict[str, list[float]] = defaultdict(list)
    for subset in subsets:
        cells = []
        for m in results.methods:
            accs, pcrs = [], []
            for s in results.seeds_of(m):
                full = results.value(m, s, CLEAN, "all", 0.0, "accuracy")
                miss = results.value(m, s, MISSING_SUBSET, subset, 1.0, "accuracy")
                if not math.isnan(miss):
                    accs.append(miss)
                    pcrs.append(pcr(full, miss))
            mean_acc, _ = _stats(accs)
            mean_pcr, _ = _stats(pcrs)
            if not math.isnan(mean_pcr):
                averages[m].append(mean_pcr)
            cells.append("n/a" if math.isnan(mean_acc) else f"{mean_acc:.3f} ({mean_pcr:+.3f})")
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    mean_cells = [
        f"{statistics.fmean(averages[m]):+.3f}" if averages[m] else "n/a" for m in results.methods
    ]
    lines.append("| **mean PCR** | " + " | ".join(mean_cells) + " |")
    return lines + [""]


def _grid_section(
    meta: dict[str, Any], severities: dict[str, list[float]], targets: dict[str, list[str]]
) -> list[str]:
    grid = meta.get("grid", {})
    lines = ["## Grids", ""]
    for corruption, values in severities.items():
        lines.append(
            f"- `{corruption}`: severities {', '.join(f'{v:g}' for v in values)}; targets "
            f"{', '.join(targets.get(corruption, ['all', 'each']))}"
        )
    lines.append("- target `each`: every modality corrupted independently with p = 0.5")
    if grid.get("missing_subsets"):
        lines.append(
            f"- missing subsets ({len(grid['missing_subsets'])}): {', '.join(grid['missing_subsets'])}"
        )
    lines.append(f"- corruption seed: {grid.get('eval_seed', 0)}")
    lines += ["", "Units: " + " ".join((grids.__doc__ or "").split("\n\n")[1].split()), ""]
    lines += [
        "Defaults (`robustfusion benchmark`): "
        + "; ".join(
            f"{k} {', '.join(f'{v:g}' for v in vs)}" for k, vs in grids.DEFAULT_SEVERITIES.items()
        )
        + "; targets all and each, plus every modality for "
        + ", ".join(grids.Grid().modality_targets)
        + f"; at most {grids.MAX_MISSING_SUBSETS} missing subsets. `--quick`: "
        + "; ".join(
            f"{k} {', '.join(f'{v:g}' for v in vs)}" for k, vs in grids.QUICK_SEVERITIES.items()
        )
        + "; targets all and each; at most 6 missing subsets.",
        "",
    ]
    return lines
