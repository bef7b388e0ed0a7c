"""The Markdown sections of ``report.md``: overview and training settings, clean test metrics,
robustness summary (nAUC), missing modalities (PCR), "do the weights matter?" and the grids.

Every metric column, heading and word naming a metric comes from the task's metric specs
(:attr:`robustfusion.tasks.base.Task.metrics`): the summaries are of its primary metric, numbers
print with the spec's ``digits`` (one fewer in the compact cells of the PCR table and the results
page: :func:`compact_digits`). Numbers never print as ``-0.000``: a value that rounds to zero
prints ``0.000``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from robustfusion.evaluation import grids
from robustfusion.evaluation.report.figures import severity_axis
from robustfusion.evaluation.report.reading import Results, capitalised, task_of_rows
from robustfusion.evaluation.report.statistics import mean_by_seed, mean_std, pcr
from robustfusion.evaluation.report.summaries import (
    WEIGHT_EFFECTS,
    effect_by_seed,
    mean_pcr_by_seed,
    robustness_by_seed,
    weight_effects,
)
from robustfusion.evaluation.results import CLEAN, CONFLICT, MISSING_SUBSET, TRAINING_SETTINGS
from robustfusion.tasks.base import MetricSpec, Task


def number(value: float, digits: int = 4, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals; never ``-0.000`` (a value that rounds to zero prints
    as ``0.000``, without sign); ``sign`` puts ``+`` before positive values."""
    if math.isnan(value):
        return "n/a"
    if round(value, digits) == 0:
        return f"{0.0:.{digits}f}"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def compact_digits(metric: MetricSpec) -> int:
    """Decimals of ``metric`` in compact cells (the PCR table, the results page): one fewer than
    its full ``digits``."""
    return max(1, metric.digits - 1)


def mean_pm(values: Sequence[float], digits: int = 4, sign: bool = False) -> str:
    """``mean ± std`` of the values (``n/a`` for none)."""
    mean, std = mean_std(values)
    return "n/a" if math.isnan(mean) else f"{number(mean, digits, sign)} ± {number(std, digits)}"


def overview(meta: dict[str, Any], results: Results) -> list[str]:
    """Methods, seeds, training settings and the unimodal view, above the first section."""
    primary = results.primary.title
    lines = [
        f"Methods: {', '.join(results.methods)}; seeds: {', '.join(map(str, results.seeds))}; "
        f"test split of each seed's run; model selected on validation {primary}.",
        "",
    ]
    lines += settings_used(meta)
    if meta.get("unimodal_view"):
        lines += [
            f"`unimodal` is the best single modality, **{meta['unimodal_view']}**, chosen by "
            f"validation {primary} of one unimodal run per modality (first seed), then trained "
            "for every seed.",
            "",
        ]
    return lines


def settings_used(meta: dict[str, Any]) -> list[str]:
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


def clean_table(results: Results) -> list[str]:
    """Section *Clean test <primary>*: every metric of the task per method (classification:
    accuracy, macro-F1 and ECE; segmentation: mIoU, pixel and mean class accuracy)."""
    metrics = results.metrics
    lines = [
        f"## Clean test {results.primary.title}",
        "",
        "| method | " + " | ".join(spec.title for spec in metrics) + " | seeds |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for m in results.methods:
        seeds = results.seeds_of(m)
        cells = [
            mean_pm([results.value(m, s, CLEAN, "all", 0.0, spec.name) for s in seeds], spec.digits)
            for spec in metrics
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {len(seeds)} |")
    return lines + [""]


def robustness_table(results: Results, severities: dict[str, list[float]]) -> list[str]:
    """Section *Robustness summary*: nAUC per corruption and target, and their mean."""
    summary = robustness_by_seed(results, severities)
    columns = sorted(
        {c for per in summary.values() for c in per},
        key=lambda c: (c.split("/")[0], c.split("/")[1] != "all"),
    )
    if not columns:
        return []
    metric = results.primary
    lines = [
        f"## Robustness summary (normalised AUC of {metric.title} vs severity)",
        "",
        f"Mean {metric.title} over each severity range (trapezoid rule, clean point included); "
        "`mean` averages the columns per seed. Mean ± std over seeds.",
        "",
        "| method | " + " | ".join(columns) + " | mean |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for m in results.methods:
        per = summary.get(m, {})
        cells = [mean_pm(list(per.get(c, {}).values()), metric.digits) for c in columns]
        means = mean_by_seed([per[c] for c in columns if c in per])
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {mean_pm(list(means.values()), metric.digits)} |"
        )
    return lines + [""]


def conflict_table(results: Results) -> list[str]:
    """Section *Conflictive test (RCML)*: the primary metric on the normal and the conflictive
    test set per method."""
    if not any(r["corruption"] == CONFLICT for r in results.rows):
        return []
    metric = results.primary
    digits = metric.digits
    lines = [
        "## Conflictive test (RCML)",
        "",
        f"Test {metric.title} on the normal test set and on RCML's conflictive one (Xu et al., AAAI "
        "2024: Gaussian noise, std 0.5, on a random subset of the views of 10 % of the samples; "
        "one view of 40 % of the samples replaced by that view of a sample of class y+1), mean ± "
        "std over seeds; the conflictive figure of a seed is the mean over the noise draws.",
        "",
        "| method | normal | conflictive | drop |",
        "|---|---|---|---|",
    ]
    for m in results.methods:
        normal = [results.value(m, s, CLEAN, "all", 0.0, metric.name) for s in results.seeds]
        conflict = [results.value(m, s, CONFLICT, "all", 1.0, metric.name) for s in results.seeds]
        pairs = [(a, b) for a, b in zip(normal, conflict, strict=True) if not math.isnan(a + b)]
        if not pairs:
            continue
        # the drop is the loss on the conflictive set: positive when it is worse
        drop = [a - b if metric.higher_is_better else b - a for a, b in pairs]
        lines.append(
            f"| {m} | {mean_pm([a for a, _ in pairs], digits)} | "
            f"{mean_pm([b for _, b in pairs], digits)} | {mean_pm(drop, digits)} |"
        )
    return lines + [""]


def missing_table(results: Results) -> list[str]:
    """Section *Missing modalities (PCR)*: the primary metric and its PCR per absent subset."""
    subsets = sorted(
        {r["target"] for r in results.rows if r["corruption"] == MISSING_SUBSET},
        key=lambda t: (t.count("+"), t),
    )
    if not subsets:
        return []
    metric = results.primary
    digits = compact_digits(metric)
    lines = [
        "## Missing modalities (PCR)",
        "",
        f"Test {metric.title} with the listed modalities absent for every sample, and in brackets the "
        "performance collapse rate PCR = (A_full - A_missing) / A_full (mean over seeds; lower "
        "is better).",
        "",
        "| absent | " + " | ".join(results.methods) + " |",
        "|---|" + "---|" * len(results.methods),
    ]
    for subset in subsets:
        cells = []
        for m in results.methods:
            values, pcrs = [], []
            for s in results.seeds_of(m):
                full = results.value(m, s, CLEAN, "all", 0.0, metric.name)
                miss = results.value(m, s, MISSING_SUBSET, subset, 1.0, metric.name)
                if not math.isnan(miss):
                    values.append(miss)
                    pcrs.append(pcr(full, miss, metric.higher_is_better))
            mean_value, _ = mean_std(values)
            mean_pcr, _ = mean_std(pcrs)
            cells.append(
                "n/a"
                if math.isnan(mean_value)
                else f"{number(mean_value, digits)} ({number(mean_pcr, digits, True)})"
            )
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    means = mean_pcr_by_seed(results)
    mean_cells = [
        number(mean_std(list(means[m].values()))[0], digits, True) for m in results.methods
    ]
    lines.append("| **mean PCR** | " + " | ".join(mean_cells) + " |")
    return lines + [""]


def weights_matter(
    rows: Sequence[dict[str, str]], order: Sequence[str], task: Task | None = None
) -> list[str]:
    """Section *Do the weights matter?*: the weight-control effects on the primary metric of
    ``task`` (default: the task of the rows' columns) per method and corruption, and per cell in
    a collapsed table; one line saying why when there are no controls."""
    task = task if task is not None else task_of_rows(rows)
    metric = task.primary_spec
    title = ["## Do the weights matter?", ""]
    effects = weight_effects(rows, task)
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
        + f". {capitalised(metric.title)} differences, paired by seed: mean over targets and "
        "severities per seed, then mean ± std over seeds. Oracle weights: corrupted modalities "
        "0, the clean ones share the rest. Positive Δ: the learned weights help; a large "
        f"headroom: they leave {metric.title} on the table."
        + ("" if metric.higher_is_better else " (Signs flipped: lower is better.)"),
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
                + " | ".join(mean_pm(list(v.values()), metric.digits, True) for v in values)
                + f" | {seeds} |"
            )
        for cell in sorted(cells):
            per = cells[cell]
            detail.append(
                f"| {m} | {cell[0]} | {cell[1]} | {cell[2]:g} | "
                + " | ".join(
                    mean_pm(list(per.get(key, {}).values()), metric.digits, True)
                    for key, _, _ in WEIGHT_EFFECTS
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


def grid_section(
    meta: dict[str, Any], severities: dict[str, list[float]], targets: dict[str, list[str]]
) -> list[str]:
    """Section *Grids*: severities, targets, skipped corruptions, missing subsets, defaults."""
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
