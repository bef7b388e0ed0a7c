"""The tables of docs/fidelity.md, read from benchmark folders run with ``--weight-controls``.

For every testbed (benchmark folder) and every method with per-sample weights:

* clean accuracy beside static fusion (mean ± std over seeds; paired t-test against static),
* under Gaussian noise on each single modality and on ``each`` (p = 0.5 per modality), averaged
  over the grid's severities > 0: accuracy of the method and of static, and the three controls,
  Δ = method − its uniform twin, Δ_inf = learned − uniform weights at test (same checkpoint) and
  headroom = oracle − learned (same checkpoint).

    python scripts/fidelity_tables.py runs/leaderboard/avdigits runs/leaderboard/mfeat_fou_mor \
        runs/leaderboard/mfeat_pix_mor > /tmp/fidelity_tables.md
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from robustfusion.evaluation.report import Folder, paired_p_value, weight_effects
from robustfusion.evaluation.results import CLEAN

DYNAMIC = ("udml", "dms", "pe", "qmf", "tmc")
ALPHA = 0.05


def _pm(values: Sequence[float], scale: float = 100.0, sign: bool = False) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "–"
    mean = statistics.fmean(finite) * scale
    std = (statistics.pstdev(finite) if len(finite) > 1 else 0.0) * scale
    return f"{mean:+.1f} ± {std:.1f}" if sign else f"{mean:.1f} ± {std:.1f}"


def _mark(p: float) -> str:
    return "" if p < ALPHA else " †"


def clean_table(folder: Folder, methods: Sequence[str]) -> list[str]:
    results = folder.results
    static = {
        s: results.value("static", s, CLEAN, "all", 0.0, "accuracy")
        for s in results.seeds_of("static")
    }
    lines = ["| method | clean accuracy (%) | − static (points) |", "|---|---|---|"]
    for m in ("static", *methods):
        if m not in results.methods:
            continue
        values = {
            s: results.value(m, s, CLEAN, "all", 0.0, "accuracy") for s in results.seeds_of(m)
        }
        diff = [values[s] - static[s] for s in values if s in static]
        p = paired_p_value(values, static) if m != "static" else 1.0
        delta = "" if m == "static" else _pm(diff, sign=True) + _mark(p)
        lines.append(f"| {m} | {_pm(list(values.values()))} | {delta} |")
    return lines


def noise_rows(folder: Folder, method: str, corruption: str = "gaussian") -> list[str]:
    """One row per target (each single modality, then ``each``), averaged over severities > 0."""
    results = folder.results
    effects = weight_effects(folder.all_rows).get(method, {})
    targets = [*folder.modalities, "each"]
    severities = [x for x in folder.severities.get(corruption, []) if x > 0]
    rows = []
    for target in targets:

        def mean_acc(m: str, target: str = target) -> dict[int, float]:
            out = {}
            for s in results.seeds_of(m):
                values = [
                    results.value(m, s, corruption, target, x, "accuracy") for x in severities
                ]
                values = [v for v in values if not math.isnan(v)]
                if values:
                    out[s] = statistics.fmean(values)
            return out

        mine, static = mean_acc(method), mean_acc("static")
        if not mine:
            continue
        cells = []
        for effect in ("delta", "delta_inf", "headroom"):
            per_seed: dict[int, list[float]] = {}
            for (c, t, _x), values in effects.items():
                if c == corruption and t == target:
                    for s, v in values.get(effect, {}).items():
                        per_seed.setdefault(s, []).append(v)
            means = {s: statistics.fmean(v) for s, v in per_seed.items()}
            p = paired_p_value(means, None) if means else 1.0
            cells.append((_pm(list(means.values()), sign=True) + _mark(p)) if means else "–")
        p_static = paired_p_value(mine, static)
        rows.append(
            f"| {method} | {target} | {_pm(list(mine.values()))}{_mark(p_static)} | "
            f"{_pm(list(static.values()))} | " + " | ".join(cells) + " |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--methods", nargs="+", default=list(DYNAMIC))
    args = parser.parse_args()
    for path in args.folders:
        folder = Folder.read(path)
        print(f"### {path.name}\n")
        print("\n".join(clean_table(folder, args.methods)))
        print(
            "\nGaussian noise, mean over the severities > 0 (accuracy %; Δ in points; † not "
            "significant at p < 0.05, paired over seeds: accuracy against static, Δ against 0):\n"
        )
        print(
            "| method | noisy | accuracy | static | Δ vs uniform twin | Δ_inf uniform at test | "
            "headroom to oracle |"
        )
        print("|---|---|---|---|---|---|---|")
        for m in args.methods:
            if m in folder.results.methods:
                print("\n".join(noise_rows(folder, m)))
        print()


if __name__ == "__main__":
    main()
