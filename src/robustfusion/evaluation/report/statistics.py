"""The report's numbers: normalised AUC, PCR, mean ± std over seeds and the paired tests.

The figures are those of the task's primary metric ``A`` (accuracy for classification, mIoU for
segmentation: :attr:`robustfusion.tasks.base.Task.primary`). Normalised AUC (MultiBench-style):
``nAUC = integral of A over severity / (s_max - s_min)`` by the trapezoid rule, over the grid's
severities including the clean 0: the mean of ``A`` over the severity range, 1 for a perfect model
at every severity. PCR (performance collapse rate) of an absent subset ``S``:
``(A_full - A_without_S) / A_full`` per seed, then mean over seeds.
"""

from __future__ import annotations

import itertools
import math
import statistics
import warnings
from collections.abc import Sequence

#: Significance level of the paired tests of the results page.
ALPHA = 0.05


def normalised_auc(severities: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under a metric-vs-severity curve divided by the severity range."""
    points = sorted(zip(severities, values, strict=True))
    if len(points) < 2:
        return points[0][1] if points else math.nan
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    return area / (points[-1][0] - points[0][0])


def pcr(full: float, missing: float, higher_is_better: bool = True) -> float:
    """Performance collapse rate ``(A_full - A_missing) / A_full`` (for a metric where lower is
    better, ``(A_missing - A_full) / A_full``: positive when the absence hurts)."""
    if not full > 0:
        return math.nan
    return (full - missing) / full if higher_is_better else (missing - full) / full


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the values that are not ``nan`` (``nan`` for none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.pstdev(finite) if len(finite) > 1 else 0.0


def mean_by_seed(columns: Sequence[dict[int, float]]) -> dict[int, float]:
    """Per seed, the mean of the columns that have a value for that seed."""
    seeds = sorted({s for column in columns for s in column})
    return {
        s: statistics.fmean([c[s] for c in columns if s in c and not math.isnan(c[s])])
        for s in seeds
        if any(s in c and not math.isnan(c[s]) for c in columns)
    }


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
