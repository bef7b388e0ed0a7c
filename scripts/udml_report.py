"""Tables (mean ± std over seeds) from ``scripts/udml_experiments.py``'s ``results.jsonl``.

    python scripts/udml_report.py runs/udml/avdigits/results.jsonl runs/udml/mfeat/results.jsonl

Prints Markdown: test accuracy (%) per variant, clean and under Gaussian noise per target and
severity, and the mean fusion weight the noised modality receives (which shows whether the
dynamic weights react to the noise). With more than two modalities, only the highest severity
of each single-modality target is shown (every severity of the ``each`` protocol is kept).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ORDER = [
    "static",
    "pe",
    "udml",
    "udml-estimator-only",
    "udml-alpha-only",
    "udml-no-probabilistic",
    "udml-vector-layer",
    "udml-uniform-weights",
    "udml-decoupled",
    "udml-per-sample-alpha",
]


def columns(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    seen: dict[tuple[str, float], None] = {}
    for row in rows:
        seen[(row["target"], row["severity"])] = None
    keys = list(seen)
    targets = {t for t, _ in keys if t not in ("none", "each")}
    if len(targets) <= 2:
        return keys
    top = {t: max(s for tt, s in keys if tt == t) for t in targets}
    return [(t, s) for t, s in keys if t in ("none", "each") or s == top[t]]


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "–"
    array = np.asarray(values) * scale
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}"


def table(rows: list[dict[str, Any]], value: str) -> str:
    cols = columns(rows)
    grouped: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    seeds: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        if value == "accuracy":
            number = row["accuracy"]
        elif row["target"] in row["mean_weight"]:
            number = row["mean_weight"][row["target"]]
        else:
            continue
        grouped[(row["variant"], row["target"], row["severity"])].append(number)
        seeds[row["variant"]].add(row["seed"])
    if value != "accuracy":
        cols = [c for c in cols if c[0] not in ("none", "each")]
    header = ["variant (seeds)"] + ["clean" if t == "none" else f"{t} {s:g}" for t, s in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    variants = [v for v in ORDER if v in seeds] + sorted(set(seeds) - set(ORDER))
    for variant in variants:
        cells = [f"{variant} ({len(seeds[variant])})"]
        for target, severity in cols:
            values = grouped.get((variant, target, severity), [])
            cells.append(fmt(values, 100.0, 1) if value == "accuracy" else fmt(values, 1.0, 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clean_weights(rows: list[dict[str, Any]]) -> str:
    """Mean normalised weight of every modality on clean test data (the dependency bias)."""
    clean = [r for r in rows if r["target"] == "none"]
    modalities = list(clean[0]["mean_weight"])
    grouped: dict[str, list[list[float]]] = defaultdict(list)
    for row in clean:
        grouped[row["variant"]].append([row["mean_weight"][m] for m in modalities])
    lines = ["| variant | " + " | ".join(modalities) + " |", "|" + "---|" * (len(modalities) + 1)]
    for variant in [v for v in ORDER if v in grouped]:
        values = np.asarray(grouped[variant])
        cells = [fmt(list(values[:, j]), 1.0, 3) for j in range(len(modalities))]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    for path in args.results:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        dataset = rows[0]["dataset"]
        print(f"### {dataset}: test accuracy (%), mean ± std over seeds\n")
        print(table(rows, "accuracy") + "\n")
        print(f"### {dataset}: mean normalised weight of the noised modality\n")
        print(table(rows, "weight") + "\n")
        print(f"### {dataset}: mean normalised weight per modality on clean data\n")
        print(clean_weights(rows) + "\n")


if __name__ == "__main__":
    main()
