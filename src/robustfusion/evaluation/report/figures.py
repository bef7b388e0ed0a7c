"""The report's figures (drawn by :mod:`robustfusion.evaluation.plots`): the task's primary metric
vs severity (``figures/<metric>_<corruption>.png``: accuracy, mIoU) and modality weights vs
severity, one file per corruption under ``figures/``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from robustfusion.data.corruptions.base import corruption_facts
from robustfusion.evaluation.plots import Curve, plot_panels
from robustfusion.evaluation.report.reading import Results, capitalised
from robustfusion.registry import CORRUPTIONS

FIGURES_DIR = "figures"
#: Axis title of each corruption's severity (its registered unit).
SEVERITY_AXES: dict[str, str] = {name: f.unit for name, f in corruption_facts().items()}


def severity_axis(corruption: str) -> str:
    """The x-axis title of ``corruption``: what its severity measures, with its unit."""
    return SEVERITY_AXES.get(corruption, "severity")


def metric_figures(
    out: Path, results: Results, severities: dict[str, list[float]], targets: dict[str, list[str]]
) -> list[str]:
    """Section *<Primary metric> vs severity* (*Accuracy vs severity*): one figure per corruption,
    a panel per target."""
    metric = results.primary
    lines = [f"## {capitalised(metric.title)} vs severity", ""]
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
        name = f"{FIGURES_DIR}/{metric.name}_{corruption}.png"
        plot_panels(
            panels,
            out / name,
            title=f"{corruption}: test {metric.title} (mean ± std over seeds)",
            xlabel=severity_axis(corruption),
            ylabel=metric.title,
        )
        lines += [f"![{metric.title} vs {corruption} severity]({name})", ""]
    return lines


def weight_figures(
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
