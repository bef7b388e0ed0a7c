"""Per method and seed, what the tables compare: nAUC per corruption and target, mean PCR over
the missing subsets, and the "do the weights matter?" effects of the weight controls; all of them
on the task's primary metric (accuracy, mIoU), in its direction."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from robustfusion.evaluation.plots import TWIN_SUFFIX
from robustfusion.evaluation.report.reading import (
    ORACLE,
    UNIFORM,
    Results,
    is_twin,
    task_of_rows,
    weights_of,
)
from robustfusion.evaluation.report.statistics import mean_by_seed, normalised_auc, pcr
from robustfusion.evaluation.results import CLEAN, LEARNED, MISSING_SUBSET
from robustfusion.tasks.base import Task


def robustness_by_seed(
    results: Results, severities: dict[str, list[float]]
) -> dict[str, dict[str, dict[int, float]]]:
    """``{method: {"corruption/target": {seed: nAUC}}}`` for targets all and each (nAUC of the
    primary metric)."""
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


def mean_pcr_by_seed(results: Results) -> dict[str, dict[int, float]]:
    """``{method: {seed: PCR averaged over the missing subsets}}`` (PCR of the primary metric)."""
    subsets = sorted({r["target"] for r in results.rows if r["corruption"] == MISSING_SUBSET})
    metric = results.primary
    out: dict[str, dict[int, float]] = {}
    for m in results.methods:
        out[m] = {}
        for s in results.seeds_of(m):
            full = results.value(m, s, CLEAN, "all", 0.0, metric.name)
            values = [
                pcr(full, miss, metric.higher_is_better)
                for subset in subsets
                if not math.isnan(
                    miss := results.value(m, s, MISSING_SUBSET, subset, 1.0, metric.name)
                )
            ]
            values = [v for v in values if not math.isnan(v)]
            if values:
                out[m][s] = statistics.fmean(values)
    return out


#: The three "do the weights matter?" quantities: name, column title, what it compares.
WEIGHT_EFFECTS = (
    ("delta", "Δ vs uniform twin", "method − its uniform twin (trained with uniform weights)"),
    ("delta_inf", "Δ_inf uniform at test", "learned − uniform weights at test (same checkpoint)"),
    ("headroom", "headroom to oracle", "oracle − learned weights at test (same checkpoint)"),
)

#: A cell of the weights section: (corruption, target, severity).
EffectCell = tuple[str, str, float]


def weight_effects(
    rows: Sequence[dict[str, str]], task: Task | None = None
) -> dict[str, dict[EffectCell, dict[str, dict[int, float]]]]:
    """``{method: {(corruption, target, severity): {effect: {seed: value}}}}`` for every method
    that has weight-control rows (a uniform twin, or ``uniform``/``oracle`` rows), over the
    corrupted cells (severity > 0; the clean and missing-subset rows are left out).

    On the primary metric ``A`` of ``task`` (default: the task of the rows' columns):
    ``delta = A(m) - A(m~uniform)``, ``delta_inf = A(m) - A(m, uniform weights)``,
    ``headroom = A(m, oracle weights) - A(m)``, each paired by seed; for a metric where lower is
    better each sign is flipped, so that a positive effect is always an improvement.
    """
    metric = (task if task is not None else task_of_rows(rows)).primary_spec
    column = metric.name
    figure: dict[tuple[str, int, str, str, float, str], float] = {}
    for r in rows:
        if r["corruption"] in (CLEAN, MISSING_SUBSET) or float(r["severity"]) <= 0:
            continue
        if r.get(column, "") in ("", "nan"):
            continue
        key = (r["method"], int(r["seed"]), r["corruption"], r["target"], float(r["severity"]))
        figure[(*key, weights_of(r))] = float(r[column])
    controlled = {m for (m, *_, w) in figure if w != LEARNED and not is_twin(m)}
    controlled |= {m.removesuffix(TWIN_SUFFIX) for (m, *_) in figure if is_twin(m)}
    effects: dict[str, dict[EffectCell, dict[str, dict[int, float]]]] = {}
    for (m, seed, corruption, target, severity, w), own in figure.items():
        if m not in controlled or w != LEARNED:
            continue
        others = {
            "delta": figure.get((m + TWIN_SUFFIX, seed, corruption, target, severity, LEARNED)),
            "delta_inf": figure.get((m, seed, corruption, target, severity, UNIFORM)),
            "headroom": figure.get((m, seed, corruption, target, severity, ORACLE)),
        }
        cell = effects.setdefault(m, {}).setdefault((corruption, target, severity), {})
        for effect, other in others.items():
            if other is not None:
                value = other - own if effect == "headroom" else own - other
                cell.setdefault(effect, {})[seed] = value if metric.higher_is_better else -value
    return effects


def effect_by_seed(
    cells: dict[EffectCell, dict[str, dict[int, float]]], effect: str, corruption: str | None = None
) -> dict[int, float]:
    """Per seed, the mean of ``effect`` over the cells (of ``corruption``, or all of them)."""
    return mean_by_seed(
        [per[effect] for c, per in cells.items() if effect in per and corruption in (None, c[0])]
    )
