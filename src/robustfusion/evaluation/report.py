"""``report.md`` of a benchmark folder: clean accuracy, robustness summary (normalised AUC),
accuracy and modality-weight curves, the missing-modality table (PCR), "do the weights matter?"
and the grids used; and :func:`write_results_page`, one page over several benchmark folders.

Normalised AUC (MultiBench-style): ``nAUC = integral of accuracy over severity / (s_max - s_min)``
by the trapezoid rule, over the grid's severities including the clean 0: the mean accuracy over
the severity range, 1 for a perfect model at every severity. PCR (performance collapse rate) of
an absent subset ``S``: ``(A_full - A_without_S) / A_full`` per seed, then mean over seeds.

Rows of ``results.csv`` whose column ``weights`` is ``uniform`` or ``oracle`` (the same checkpoint
evaluated with swapped modality weights) and the uniform twins ``<method>~uniform`` feed only the
"do the weights matter?" section; every other table and figure shows the methods' own
(``learned``) weights. A file without the column holds only ``learned`` rows.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import statistics
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_bytes, write_text
from robustfusion.data.corruptions.base import corruption_facts
from robustfusion.errors import DataError
from robustfusion.evaluation import grids
from robustfusion.evaluation.plots import TWIN_SUFFIX, Curve, plot_panels
from robustfusion.evaluation.results import (
    CLEAN,
    META_FILE,
    MISSING_SUBSET,
    RESULTS_FILE,
    TRAINING_SETTINGS,
)
from robustfusion.registry import CORRUPTIONS

REPORT_FILE = "report.md"
FIGURES_DIR = "figures"
#: Axis title of each corruption's severity (its registered unit).
SEVERITY_AXES: dict[str, str] = {name: f.unit for name, f in corruption_facts().items()}
#: ``weights`` column values: the method's own weights, uniform ones, the oracle's.
LEARNED, UNIFORM, ORACLE = "learned", "uniform", "oracle"
#: Significance level of the paired tests of the results page.
ALPHA = 0.05


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


def _num(value: float, digits: int = 4, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals; never ``-0.000`` (a value that rounds to zero prints
    as ``0.000``, without sign); ``sign`` puts ``+`` before positive values."""
    if math.isnan(value):
        return "n/a"
    if round(value, digits) == 0:
        return f"{0.0:.{digits}f}"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _pm(values: Sequence[float], digits: int = 4, sign: bool = False) -> str:
    mean, std = _stats(values)
    return "n/a" if math.isnan(mean) else f"{_num(mean, digits, sign)} ± {_num(std, digits)}"


def severity_axis(corruption: str) -> str:
    """The x-axis title of ``corruption``: what its severity measures, with its unit."""
    return SEVERITY_AXES.get(corruption, "severity")


def weights_of(row: dict[str, str]) -> str:
    """The ``weights`` column of a row (``learned`` when the file has no such column)."""
    return row.get("weights") or LEARNED


def is_twin(method: str) -> bool:
    return method.endswith(TWIN_SUFFIX)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``results.csv``; a torn last line (no newline) is ignored, and of rows for the
    same cell and weights the last one wins (a cell redone after a kill)."""
    raw = Path(path).read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")):
        key = (row["method"], str(int(row["seed"])), row["corruption"],
               repr(float(row["severity"])), row["target"], weights_of(row))  # fmt: skip
        rows[key] = row
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
        stats = [_stats(v) for v in values]
        return xs, [m for m, _ in stats], [s for _, s in stats]


def write_report(out: Path) -> Path:
    """Write ``out/report.md`` and ``out/figures/*.png`` from ``results.csv`` and ``benchmark.json``."""
    out = Path(out)
    folder = Folder.read(out)
    meta, results, severities, targets = (
        folder.meta,
        folder.results,
        folder.severities,
        folder.targets,
    )
    lines = [f"# Robustness benchmark: {meta.get('dataset', '?')}", ""]
    lines += _overview(meta, results)
    lines += _clean_table(results)
    lines += _robustness_table(results, severities)
    lines += _curves(out, results, severities, targets)
    lines += _weight_curves(out, results, severities, folder.modalities, targets)
    lines += _missing_table(results)
    lines += _weights_matter(folder.all_rows, meta.get("methods", []))
    lines += _grid_section(meta, severities, targets)
    path = out / REPORT_FILE
    write_text(path, "\n".join(lines) + "\n")
    return path


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


def _overview(meta: dict[str, Any], results: Results) -> list[str]:
    lines = [
        f"Methods: {', '.join(results.methods)}; seeds: {', '.join(map(str, results.seeds))}; "
        f"test split of each seed's run; model selected on validation accuracy.",
        "",
    ]
    lines += _settings_used(meta)
    if meta.get("unimodal_view"):
        lines += [
            f"`unimodal` is the best single modality, **{meta['unimodal_view']}**, chosen by "
            "validation accuracy of one unimodal run per modality (first seed), then trained "
            "for every seed.",
            "",
        ]
    return lines


def _settings_used(meta: dict[str, Any]) -> list[str]:
    """The training settings of the runs, read back from their folders (``benchmark.json``'s
    ``runs``): one line for what every run shares, one per method for what differs."""
    runs: dict[str, dict[str, Any]] = meta.get("runs") or {}
    if not runs:
        base = meta.get("base_config", {})
        if not base:
            return []
        shown = ", ".join(f"{k} {base[k]}" for k in TRAINING_SETTINGS if k in base)
        return [f"Training (requested; the runs did not record theirs): {shown}.", ""]
    methods: dict[str, dict[str, set[str]]] = {}
    for run in runs.values():
        label = run.get("label") or run.get("method", "?")
        for k in TRAINING_SETTINGS:
            if k in run:
                methods.setdefault(label, {}).setdefault(k, set()).add(str(run[k]))
    shared = {
        k
        for k in TRAINING_SETTINGS
        if all(len(v.get(k, ())) == 1 for v in methods.values())
        and len({next(iter(v[k])) for v in methods.values() if k in v}) == 1
    }
    first = next(iter(methods.values()))
    lines = [
        "Training, as the runs used it: "
        + ", ".join(
            f"{k} {next(iter(first[k]))}" for k in TRAINING_SETTINGS if k in shared and k in first
        )
        + "."
    ]
    for label, values in methods.items():
        own = [f"{k} {'/'.join(sorted(v))}" for k, v in values.items() if k not in shared]
        if own:
            lines.append(f"- `{label}`: {', '.join(own)}")
    return [*lines, ""]


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


def robustness_by_seed(
    results: Results, severities: dict[str, list[float]]
) -> dict[str, dict[str, dict[int, float]]]:
    """``{method: {"corruption/target": {seed: nAUC}}}`` for targets all and each."""
    summary: dict[str, dict[str, dict[int, float]]] = {}
    for m in results.methods:
        summary[m] = {}
        for corruption in severities:
            for target in ("all", "each"):
                values = {}
                for s in results.seeds_of(m):
                    xs, ys = results.curve(m, s, corruption, target)
                    if len(xs) >= 2:
                        values[s] = normalised_auc(xs, ys)
                if values:
                    summary[m][f"{corruption}/{target}"] = values
    return summary


def robustness_summary(
    results: Results, severities: dict[str, list[float]]
) -> dict[str, dict[str, list[float]]]:
    """``{method: {"corruption/target": [nAUC per seed]}}`` for targets all and each."""
    return {
        m: {column: list(per_seed.values()) for column, per_seed in per.items()}
        for m, per in robustness_by_seed(results, severities).items()
    }


def _mean_by_seed(columns: Sequence[dict[int, float]]) -> dict[int, float]:
    """Per seed, the mean of the columns that have a value for that seed."""
    seeds = sorted({s for column in columns for s in column})
    return {
        s: statistics.fmean([c[s] for c in columns if s in c and not math.isnan(c[s])])
        for s in seeds
        if any(s in c and not math.isnan(c[s]) for c in columns)
    }


def _robustness_table(results: Results, severities: dict[str, list[float]]) -> list[str]:
    summary = robustness_by_seed(results, severities)
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
        cells = [_pm(list(per.get(c, {}).values())) for c in columns]
        means = _mean_by_seed([per[c] for c in columns if c in per])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_pm(list(means.values()))} |")
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
            xlabel=severity_axis(corruption),
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
    """Per corruption: the weight of modality *m* when only *m* is corrupted, where the grid has
    per-modality targets; otherwise (``--quick``) the mean weight of each modality under target
    ``each`` (or ``all``), so that every report has a weight figure."""
    lines = [
        "## Modality weights vs severity",
        "",
        "Mean fusion weight (`FusionOutput.weights`, normalised to sum 1 over the present "
        "modalities) vs severity. Static-weight methods stay flat at 1/M.",
        "",
    ]
    drawn = False
    for corruption in severities:
        if CORRUPTIONS.facts(corruption).removes_modalities:
            continue  # an absent modality's weight is 0 by definition
        own = [m for m in modalities if m in targets.get(corruption, [])]
        shared = next((t for t in ("each", "all") if t in targets.get(corruption, [])), None)
        panels: dict[str, dict[str, Curve]] = {}
        for m in own or modalities:
            target = m if own else shared
            if target is None:
                continue
            curves = {
                method: c
                for method in results.methods
                if (c := results.mean_curve(method, corruption, target, f"weight_{m}"))
                and not all(math.isnan(v) for v in c[1])
            }
            if curves:
                panels[f"{m} corrupted: weight of {m}" if own else f"weight of {m}"] = curves
        if not panels:
            continue
        what = (
            "weight of the corrupted modality (only that modality corrupted)"
            if own
            else f"weight of each modality, target {shared}"
        )
        name = f"{FIGURES_DIR}/weight_{corruption}.png"
        plot_panels(
            panels,
            out / name,
            title=f"{corruption}: {what}",
            xlabel=severity_axis(corruption),
            ylabel="mean weight",
        )
        if not own:
            lines += [
                f"`{corruption}`: the grid has no single-modality targets (`--quick`), so this "
                f"figure shows the weight of each modality under target `{shared}`"
                + (
                    " (each modality corrupted in half of the samples)."
                    if shared == "each"
                    else "."
                )
            ]
        lines += [f"![weight vs {corruption} severity]({name})", ""]
        drawn = True
    return lines if drawn else []


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
            cells.append(
                "n/a"
                if math.isnan(mean_acc)
                else f"{_num(mean_acc, 3)} ({_num(mean_pcr, 3, True)})"
            )
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    means = mean_pcr_by_seed(results)
    mean_cells = [_num(_stats(list(means[m].values()))[0], 3, True) for m in results.methods]
    lines.append("| **mean PCR** | " + " | ".join(mean_cells) + " |")
    return lines + [""]


def mean_pcr_by_seed(results: Results) -> dict[str, dict[int, float]]:
    """``{method: {seed: PCR averaged over the missing subsets}}``."""
    subsets = sorted({r["target"] for r in results.rows if r["corruption"] == MISSING_SUBSET})
    out: dict[str, dict[int, float]] = {}
    for m in results.methods:
        out[m] = {}
        for s in results.seeds_of(m):
            full = results.value(m, s, CLEAN, "all", 0.0, "accuracy")
            values = [
                pcr(full, miss)
                for subset in subsets
                if not math.isnan(
                    miss := results.value(m, s, MISSING_SUBSET, subset, 1.0, "accuracy")
                )
            ]
            values = [v for v in values if not math.isnan(v)]
            if values:
                out[m][s] = statistics.fmean(values)
    return out


# ------------------------------------------------------------------ do the weights matter?

#: The three "do the weights matter?" quantities: name, column title, what it compares.
WEIGHT_EFFECTS = (
    ("delta", "Δ vs uniform twin", "method − its uniform twin (trained with uniform weights)"),
    ("delta_inf", "Δ_inf uniform at test", "learned − uniform weights at test (same checkpoint)"),
    ("headroom", "headroom to oracle", "oracle − learned weights at test (same checkpoint)"),
)

#: A cell of the weights section: (corruption, target, severity).
EffectCell = tuple[str, str, float]


def weight_effects(
    rows: Sequence[dict[str, str]],
) -> dict[str, dict[EffectCell, dict[str, dict[int, float]]]]:
    """``{method: {(corruption, target, severity): {effect: {seed: value}}}}`` for every method
    that has weight-control rows (a uniform twin, or ``uniform``/``oracle`` rows), over the
    corrupted cells (severity > 0; the clean and missing-subset rows are left out).

    ``delta = acc(m) - acc(m~uniform)``, ``delta_inf = acc(m) - acc(m, uniform weights)``,
    ``headroom = acc(m, oracle weights) - acc(m)``, each paired by seed.
    """
    accuracy: dict[tuple[str, int, str, str, float, str], float] = {}
    for r in rows:
        if r["corruption"] in (CLEAN, MISSING_SUBSET) or float(r["severity"]) <= 0:
            continue
        if r.get("accuracy", "") in ("", "nan"):
            continue
        key = (r["method"], int(r["seed"]), r["corruption"], r["target"], float(r["severity"]))
        accuracy[(*key, weights_of(r))] = float(r["accuracy"])
    controlled = {m for (m, *_, w) in accuracy if w != LEARNED and not is_twin(m)}
    controlled |= {m.removesuffix(TWIN_SUFFIX) for (m, *_) in accuracy if is_twin(m)}
    effects: dict[str, dict[EffectCell, dict[str, dict[int, float]]]] = {}
    for (m, seed, corruption, target, severity, w), own in accuracy.items():
        if m not in controlled or w != LEARNED:
            continue
        others = {
            "delta": accuracy.get((m + TWIN_SUFFIX, seed, corruption, target, severity, LEARNED)),
            "delta_inf": accuracy.get((m, seed, corruption, target, severity, UNIFORM)),
            "headroom": accuracy.get((m, seed, corruption, target, severity, ORACLE)),
        }
        cell = effects.setdefault(m, {}).setdefault((corruption, target, severity), {})
        for effect, other in others.items():
            if other is not None:
                value = other - own if effect == "headroom" else own - other
                cell.setdefault(effect, {})[seed] = value
    return effects


def effect_by_seed(
    cells: dict[EffectCell, dict[str, dict[int, float]]], effect: str, corruption: str | None = None
) -> dict[int, float]:
    """Per seed, the mean of ``effect`` over the cells (of ``corruption``, or all of them)."""
    return _mean_by_seed(
        [per[effect] for c, per in cells.items() if effect in per and corruption in (None, c[0])]
    )


def _weights_matter(rows: Sequence[dict[str, str]], order: Sequence[str]) -> list[str]:
    title = ["## Do the weights matter?", ""]
    effects = weight_effects(rows)
    if not effects:
        return title + [
            "Omitted: results.csv has no weight-control rows (a `weights` column with `uniform` "
            "or `oracle` rows, or `<method>~uniform` runs); run the benchmark with weight "
            "controls.",
            "",
        ]
    methods = [m for m in order if m in effects] + sorted(set(effects) - set(order))
    lines = title + [
        "For each method with per-sample modality weights, over the corrupted cells (severity > 0; "
        "every target): "
        + "; ".join(f"**{name}** = {what}" for _, name, what in WEIGHT_EFFECTS)
        + ". Accuracy differences, paired by seed: mean over targets and severities per seed, "
        "then mean ± std over seeds. Oracle weights: corrupted modalities 0, the clean ones "
        "share the rest. Positive Δ: the learned weights help; a large headroom: they leave "
        "accuracy on the table.",
        "",
        "| method | corruption | "
        + " | ".join(name for _, name, _ in WEIGHT_EFFECTS)
        + " | seeds |",
        "|---|---|" + "---|" * (len(WEIGHT_EFFECTS) + 1),
    ]
    detail = [
        "| method | corruption | target | severity | "
        + " | ".join(name for _, name, _ in WEIGHT_EFFECTS)
        + " |",
        "|---|---|---|---|" + "---|" * len(WEIGHT_EFFECTS),
    ]
    for m in methods:
        cells = effects[m]
        corruptions = sorted({c for c, _, _ in cells})
        for corruption in [*corruptions, None]:
            values = [effect_by_seed(cells, key, corruption) for key, _, _ in WEIGHT_EFFECTS]
            seeds = len(set().union(*values))
            label = f"`{corruption}`" if corruption else "**all**"
            lines.append(
                f"| {m} | {label} | "
                + " | ".join(_pm(list(v.values()), 4, True) for v in values)
                + f" | {seeds} |"
            )
        for cell in sorted(cells):
            per = cells[cell]
            detail.append(
                f"| {m} | {cell[0]} | {cell[1]} | {cell[2]:g} | "
                + " | ".join(
                    _pm(list(per.get(key, {}).values()), 4, True) for key, _, _ in WEIGHT_EFFECTS
                )
                + " |"
            )
    return lines + [
        "",
        "<details><summary>Per target and severity</summary>",
        "",
        *detail,
        "",
        "</details>",
        "",
    ]


def _grid_section(
    meta: dict[str, Any], severities: dict[str, list[float]], targets: dict[str, list[str]]
) -> list[str]:
    grid = meta.get("grid", {})
    lines = ["## Grids", ""]
    for corruption, values in severities.items():
        lines.append(
            f"- `{corruption}`, severity = {severity_axis(corruption)}: "
            f"{', '.join(f'{v:g}' for v in values)}; targets "
            f"{', '.join(targets.get(corruption, ['all', 'each'])) or 'none (see below)'}"
        )
    lines.append("- target `each`: every modality corrupted independently with p = 0.5")
    skipped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in grid.get("skipped") or []:
        skipped[(str(entry.get("corruption")), str(entry.get("reason", "")))].append(
            str(entry.get("target"))
        )
    for (corruption, reason), where in skipped.items():
        lines.append(
            f"- `{corruption}` not applied to {', '.join(f'`{t}`' for t in where)}"
            + (f": {reason}" if reason else "")
        )
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


# ------------------------------------------------------------------ results page (several folders)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def paired_p_value(values: dict[int, float], reference: dict[int, float] | None) -> float:
    """Two-sided p of a paired t-test of ``values`` against ``reference`` over their common seeds
    (against 0 when ``reference`` is None); ``nan`` with fewer than 2 seeds or no variation."""
    from scipy import stats

    seeds = sorted(set(values) & set(reference)) if reference is not None else sorted(values)
    xs = [values[s] for s in seeds]
    if len(xs) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical samples: scipy warns and returns nan
        if reference is None:
            result = stats.ttest_1samp(xs, 0.0)
        else:
            result = stats.ttest_rel(xs, [reference[s] for s in seeds])
    return float(result.pvalue)


def _cell(values: dict[int, float], p: float | None, digits: int = 3, sign: bool = False) -> str:
    """``mean ± std``, with ``†`` when a test was asked for (``p`` not None) and p >= ALPHA or
    the test could not be made."""
    text = _pm(list(values.values()), digits, sign)
    if text != "n/a" and p is not None and not p < ALPHA:
        text += " †"
    return text


def dataset_columns(
    folder: Folder,
) -> tuple[list[str], dict[str, dict[str, dict[int, float]]], set[str]]:
    """The results page's columns for one benchmark folder: their titles, per method and column
    the value of each seed, and the columns tested against 0 rather than against ``static``."""
    results = folder.results
    robustness = robustness_by_seed(results, folder.severities)
    pcrs = mean_pcr_by_seed(results)
    effects = weight_effects(folder.all_rows)
    corruptions = [
        c
        for c in folder.severities
        if any(f"{c}/{t}" in robustness[m] for m in robustness for t in ("all", "each"))
    ]
    titles = ["clean accuracy", "macro-F1", "ECE"]
    titles += [f"nAUC {c}" for c in corruptions]
    if any(pcrs.values()):
        titles.append("mean PCR")
    effect_titles = [
        name
        for key, name, _ in WEIGHT_EFFECTS
        if any(effect_by_seed(cells, key) for cells in effects.values())
    ]
    titles += effect_titles
    table: dict[str, dict[str, dict[int, float]]] = {}
    for m in results.methods:
        seeds = results.seeds_of(m)
        row: dict[str, dict[int, float]] = {}
        for title, column in zip(titles[:3], ("accuracy", "macro_f1", "ece"), strict=True):
            row[title] = {
                s: v
                for s in seeds
                if not math.isnan(v := results.value(m, s, CLEAN, "all", 0.0, column))
            }
        for c in corruptions:
            per = robustness.get(m, {})
            row[f"nAUC {c}"] = _mean_by_seed(
                [per[k] for k in (f"{c}/all", f"{c}/each") if k in per]
            )
        if "mean PCR" in titles:
            row["mean PCR"] = pcrs.get(m, {})
        for key, name, _ in WEIGHT_EFFECTS:
            if name in effect_titles:
                row[name] = effect_by_seed(effects.get(m, {}), key)
        table[m] = row
    return titles, table, set(effect_titles)


def _reference_table(folder: Folder, reference: dict[str, Any]) -> list[str]:
    """Accuracy per severity of every method beside figures published elsewhere (e.g. the
    official TMC code's), for one corruption and target; ✓ marks the reference method within
    ``tolerance`` of every anchor."""
    corruption = reference.get("corruption", "gaussian")
    target = reference.get("target", "all")
    anchors = {float(k): float(v) for k, v in reference["accuracy"].items()}
    levels = sorted(anchors)
    tolerance = float(reference.get("tolerance", 0.01))
    results = folder.results
    header = " | ".join(f"σ={x:g}" if x else "clean" for x in levels)
    lines = [
        f"Beside {reference.get('source', 'a reference')} ({corruption}, target {target}; "
        "accuracy %, mean ± std over seeds):",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(levels),
        "| **reference** | " + " | ".join(f"{100 * anchors[x]:.2f}" for x in levels) + " |",
    ]
    for m in results.methods:
        cells, within = [], True
        for x in levels:
            c, t = (CLEAN, "all") if x == 0 else (corruption, target)
            values = [results.value(m, seed, c, t, x, "accuracy") for seed in results.seeds_of(m)]
            values = [v for v in values if not math.isnan(v)]
            if not values:
                cells.append("–")
                within = False
                continue
            mean, std = _stats(values)
            within &= abs(mean - anchors[x]) <= tolerance + 1e-12
            cells.append(f"{100 * mean:.2f} ± {100 * std:.2f}")
        mark = " ✓" if m == reference.get("method") and within else ""
        lines.append(f"| {m}{mark} | " + " | ".join(cells) + " |")
    method = reference.get("method")
    if method:
        lines += [
            "",
            f"✓: `{method}` lands within {100 * tolerance:g} point(s) of every reference figure.",
        ]
    return [*lines, ""]


def write_results_page(
    folders: Sequence[Path], out: Path, command: str, wall_seconds: float
) -> Path:
    """Write a results page (``docs/results.md``) over benchmark ``folders``: the command and its
    wall time at the top, then per folder (dataset) a table of mean ± std over seeds with paired
    t-tests, and its figures, copied to ``<out without .md>/<dataset>/`` and linked relatively.

    Each folder's ``report.md`` and figures are rewritten first (from its ``results.csv``).
    """
    out = Path(out)
    figures_root = out.parent / out.stem
    names = [Folder.read(Path(f)).meta.get("dataset") or Path(f).name for f in folders]
    lines = [
        "# Results",
        "",
        f"Produced by the command below; wall time **{_duration(wall_seconds)}**.",
        "",
        "```bash",
        command.strip(),
        "```",
        "",
        "Mean ± std over seeds (test split; model selected on validation accuracy). nAUC "
        "*c*: normalised area under accuracy vs severity of corruption *c*, mean of targets "
        "`all` and `each` per seed. Mean PCR: performance collapse rate averaged over the "
        "missing-modality subsets (lower is better). Δ vs uniform twin, Δ_inf uniform at test, "
        "headroom to oracle: see *Do the weights matter?* in each benchmark's report, averaged "
        f"over its corrupted cells. **†**: not significant at p < {ALPHA:g}, or not testable "
        "(fewer than 2 seeds): a paired t-test over seeds against `static` for the accuracy, "
        "F1, ECE, nAUC and PCR columns, a one-sample t-test against 0 for the weight columns.",
        "",
    ]
    for path, name in zip(folders, names, strict=True):
        path = Path(path)
        write_report(path)
        folder = Folder.read(path)
        part = _part_info(path)
        title = name if names.count(name) == 1 else f"{name} (`{path.name}`)"
        if part.get("name") and part["name"] != name:
            title = f"{part['name']} ({name})"
        slug = name if names.count(name) == 1 else f"{name}-{path.name}"
        lines += _dataset_section(folder, title, figures_root / slug, out.parent, part)
    write_text(out, "\n".join(lines) + "\n")
    return out


#: A suite part's description beside its benchmark folder (written by the suite runner).
PART_FILE = "suite_part.json"


def _part_info(path: Path) -> dict[str, Any]:
    file = Path(path) / PART_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it (a page committed to a
    repository names the repository's paths, not this machine's), else as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _dataset_section(
    folder: Folder, title: str, figures: Path, page_dir: Path, part: dict[str, Any] | None = None
) -> list[str]:
    results = folder.results
    titles, table, against_zero = dataset_columns(folder)
    part = part or {}
    lines = [f"## {title}", ""]
    if part.get("note"):
        lines += [part["note"] + ".", ""]
    lines.append(
        f"Methods {', '.join(results.methods)}; seeds {', '.join(map(str, results.seeds))}. "
        f"Full report: `{_shown_path(folder.path / REPORT_FILE)}`."
    )
    lines.append("")
    lines += _settings_used(folder.meta)
    if part.get("reference"):
        lines += _reference_table(folder, part["reference"])
    reference = table.get("static")
    if reference is None:
        lines += ["No `static` run in this benchmark: no test against static.", ""]
    lines += [
        "| method | " + " | ".join(titles) + " | seeds |",
        "|---|" + "---|" * (len(titles) + 1),
    ]
    for m in results.methods:
        cells = []
        for column in titles:
            values = table[m].get(column, {})
            if column in against_zero:
                cells.append(
                    _cell(values, paired_p_value(values, None), 3, True) if values else "–"
                )
            else:
                p = None
                if reference is not None and m != "static":
                    p = paired_p_value(values, reference.get(column, {}))
                cells.append(_cell(values, p))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {len(results.seeds_of(m))} |")
    lines.append("")
    source = folder.path / FIGURES_DIR
    for png in sorted(source.glob("*.png")) if source.is_dir() else []:
        target = figures / png.name
        write_bytes(target, png.read_bytes())
        link = Path(os.path.relpath(target, page_dir)).as_posix()
        lines += [f"![{title}: {png.stem.replace('_', ' ')}]({link})", ""]
    return lines
