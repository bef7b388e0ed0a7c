"""Per method and seed, what the tables compare: nAUC per corruption and target, mean PCR over
the missing subsets, and the "do the weights matter?" effects of the weight controls."""

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
    weights_of,
)
from robustfusion.evaluation.report.statistics import mean_by_seed, normalised_auc, pcr
from robustfusion.evaluation.results import CLEAN, LEARNED, MISSING_SUBSET


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
    return mean_by_seed(
        [per[effect] for c, per in cells.items() if effect in per and corruption in (None, c[0])]
    )
