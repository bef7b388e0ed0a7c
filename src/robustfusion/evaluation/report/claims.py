""" "Robust without a clean cost?": a method's clean figure and its figure under noise on each
modality, each against ``static`` and paired over seeds (issue 20's test of a claim). The figure is
the folder's task's primary metric (accuracy for classification, mIoU for segmentation), and
"ahead" is in its direction (:attr:`robustfusion.tasks.base.MetricSpec.higher_is_better`).

A method *meets* the claim on a benchmark folder when its mean clean figure is at most
:data:`CLEAN_TOLERANCE` worse than static's and its figure under the corruption is better than
static's, averaged over the grid's non-zero severities, for target ``each`` (every sample and
modality corrupted with p = 0.5) and for every modality corrupted alone. The
tables give the numbers behind the verdict, with the paired t-test of each difference, and, where
the method's uniform twin (``METHOD~uniform``) was run, what the learned weights add over it under
``each``: a method can meet the claim with weights that do nothing, and the verdict alone would
not say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from robustfusion.evaluation.report.reading import Folder, Results
from robustfusion.evaluation.report.statistics import ALPHA, mean_std, paired_p_value
from robustfusion.evaluation.report.tables import compact_digits, number
from robustfusion.evaluation.results import CLEAN
from robustfusion.evaluation.variants import TWIN_SUFFIX

#: Clean figure (of the primary metric) a robust method may give up to static and still meet the
#: claim (1 point).
CLEAN_TOLERANCE = 0.01
REFERENCE = "static"
#: The grid's target that corrupts every (sample, modality) with p = 0.5 (``--target each``).
EACH = "each"
#: Slack of the comparisons: differences of averaged figures that tie up to rounding are ties.
_EPS = 1e-12


@dataclass(frozen=True)
class Difference:
    """Per-seed differences ``method - static`` with their paired two-sided p-value."""

    by_seed: dict[int, float]
    p: float

    @property
    def mean(self) -> float:
        return mean_std(list(self.by_seed.values()))[0]

    def cell(self, digits: int = 3) -> str:
        if not self.by_seed:
            return "–"
        mean, std = mean_std(list(self.by_seed.values()))
        mark = "" if not math.isnan(self.p) and self.p < ALPHA else " †"
        return f"{number(mean, digits, sign=True)} ± {number(std, digits)}{mark}"


@dataclass(frozen=True)
class ClaimRow:
    """One method on one folder: static's clean figure of the primary metric, the clean
    difference and the difference under ``corruption`` on each modality alone (mean over non-zero
    severities)."""

    method: str
    static_clean: dict[int, float]
    clean: Difference
    noise: dict[str, Difference]
    #: non-zero severities at which the method's mean is better than static's, per modality
    ahead_at: dict[str, tuple[int, int]]
    #: the primary metric's direction: ``False`` when a lower figure is better
    higher_is_better: bool = True
    #: method − its uniform twin under ``each`` (mean over non-zero severities), when the twin ran
    weights_gain: Difference | None = None

    @property
    def meets(self) -> bool:
        if not self.clean.by_seed or not self.noise:
            return False
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * self.clean.mean >= -CLEAN_TOLERANCE - _EPS and all(
            d.by_seed and sign * d.mean > _EPS for d in self.noise.values()
        )


def _difference(values: dict[int, float], reference: dict[int, float]) -> Difference:
    seeds = sorted(set(values) & set(reference))
    diffs = {s: values[s] - reference[s] for s in seeds}
    return Difference(diffs, paired_p_value(diffs, None))


def _finite(values: dict[int, float]) -> dict[int, float]:
    return {s: v for s, v in values.items() if not math.isnan(v)}


def claim_rows(
    folder: Folder, methods: Sequence[str], corruption: str = "gaussian"
) -> list[ClaimRow]:
    """A :class:`ClaimRow` per method of ``methods`` present in ``folder`` (none without static)."""
    results = folder.results
    if REFERENCE not in results.methods:
        return []
    severities = [s for s in folder.severities.get(corruption, []) if s > 0]
    metric = results.primary

    def clean(method: str) -> dict[int, float]:
        return _finite(
            {
                s: results.value(method, s, CLEAN, "all", 0.0, metric.name)
                for s in results.seeds_of(method)
            }
        )

    def noisy(
        method: str, modality: str, severity: float, source: Results = results
    ) -> dict[int, float]:
        return _finite(
            {
                s: source.value(method, s, corruption, modality, severity, metric.name)
                for s in source.seeds_of(method)
            }
        )

    def averaged(method: str, modality: str, source: Results = results) -> dict[int, float]:
        per = [noisy(method, modality, v, source) for v in severities]
        seeds = set.intersection(*(set(p) for p in per)) if per else set()
        return {s: sum(p[s] for p in per) / len(per) for s in sorted(seeds)}

    static_clean = clean(REFERENCE)
    rows = []
    for method in methods:
        if method == REFERENCE or method not in results.methods:
            continue
        noise: dict[str, Difference] = {}
        ahead: dict[str, tuple[int, int]] = {}
        for modality in (EACH, *folder.modalities):
            reference = averaged(REFERENCE, modality)
            if not reference:
                continue
            noise[modality] = _difference(averaged(method, modality), reference)
            wins = 0
            for v in severities:
                mine, theirs = noisy(method, modality, v), noisy(REFERENCE, modality, v)
                if mine and theirs:
                    better, worse = (
                        mean_std(list(mine.values()))[0],
                        mean_std(list(theirs.values()))[0],
                    )
                    if not metric.higher_is_better:
                        better, worse = worse, better
                    if better > worse + _EPS:
                        wins += 1
            ahead[modality] = (wins, len(severities))
        difference = _difference(clean(method), static_clean)
        twin = averaged(method + TWIN_SUFFIX, EACH, folder.twins)
        gain = _difference(averaged(method, EACH), twin) if twin else None
        rows.append(
            ClaimRow(method, static_clean, difference, noise, ahead, metric.higher_is_better, gain)
        )
    return rows


def claim_table(folder: Folder, methods: Sequence[str], corruption: str = "gaussian") -> list[str]:
    """The per-folder Markdown section (empty when nothing can be compared)."""
    rows = claim_rows(folder, methods, corruption)
    if not rows:
        return []
    metric = folder.results.primary
    digits = compact_digits(metric)
    modalities = list(rows[0].noise)
    static = mean_std(list(rows[0].static_clean.values()))
    clean_rule = (
        f"clean Δ ≥ −{CLEAN_TOLERANCE:g}"
        if metric.higher_is_better
        else f"clean Δ ≤ +{CLEAN_TOLERANCE:g} (lower {metric.title} is better)"
    )
    lines = [
        f"**Robust without a clean cost?** Static's clean {metric.title} "
        f"{number(static[0], digits)} ± {number(static[1], digits)}. Δ: method − static, mean ± "
        "std over seeds of the paired "
        f"differences (**†**: not significant at p < {ALPHA:g}); under {corruption} noise "
        "on `each` (every sample and modality with p = 0.5) and on one modality at a time, "
        "averaged over the grid's non-zero severities, with the number of severities at which "
        f"the method's mean is ahead. Meets: {clean_rule} and ahead on `each` "
        "and on every modality. Weights vs twin: the method − its uniform twin under "
        f"{corruption} noise on `each` (– where no twin ran).",
        "",
        "| method | clean Δ | "
        + " | ".join(_heading(corruption, m) for m in modalities)
        + " | meets | weights vs twin |",
        "|---|---|" + "---|" * len(modalities) + "---|---|",
    ]
    for row in rows:
        cells = [
            f"{row.noise[m].cell(digits)} ({row.ahead_at[m][0]}/{row.ahead_at[m][1]})"
            if m in row.noise
            else "–"
            for m in modalities
        ]
        lines.append(
            f"| {row.method} | {row.clean.cell(digits)} | "
            + " | ".join(cells)
            + f" | {'yes' if row.meets else '**no**'} | {_gain_cell(row, digits)} |"
        )
    return lines + [""]


def _gain_cell(row: ClaimRow, digits: int) -> str:
    return row.weights_gain.cell(digits) if row.weights_gain is not None else "–"


def _sortable(mean: float, higher_is_better: bool = True) -> float:
    """A mean to sort by, worst first (``nan``, no result, before any): the worst case shown is
    never hidden."""
    if math.isnan(mean):
        return -math.inf
    return mean if higher_is_better else -mean


def _heading(corruption: str, target: str) -> str:
    where = "`each`" if target == EACH else f"on {target}"
    return f"{corruption} {where}: Δ (ahead at)"


def claim_summary(
    parts: Sequence[tuple[str, str, Folder, Sequence[str]]], corruption: str = "gaussian"
) -> list[str]:
    """One table over several folders ``(title, group, folder, methods)``: per dataset and
    method, the clean Δ, the noise Δ on ``each`` and the smallest single-modality noise Δ,
    whether the claim is met, and the weights' gain over the uniform twin."""
    entries = [
        (t, g, f.results.primary, r) for t, g, f, ms in parts for r in claim_rows(f, ms, corruption)
    ]
    if not entries:
        return []
    lines = [
        f"| dataset | group | method | static clean | clean Δ | {corruption} `each`: Δ | worst "
        f"single modality under {corruption}: Δ | meets | weights vs twin (`each`) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for title, group, metric, row in entries:
        digits = compact_digits(metric)
        static = mean_std(list(row.static_clean.values()))
        each = row.noise.get(EACH)
        singles = [(m, d) for m, d in row.noise.items() if m != EACH]
        worst = min(
            singles, key=lambda kv: _sortable(kv[1].mean, row.higher_is_better), default=None
        )
        worst_cell = f"{worst[1].cell(digits)} ({worst[0]})" if worst else "–"
        lines.append(
            f"| {title} | {group or '–'} | {row.method} | {number(static[0], digits)} | "
            f"{row.clean.cell(digits)} | {each.cell(digits) if each else '–'} | {worst_cell} | "
            f"{'yes' if row.meets else '**no**'} | {_gain_cell(row, digits)} |"
        )
    return lines + [""]
