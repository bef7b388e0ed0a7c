"""Benchmark figures (matplotlib, Agg backend), written atomically (temp file + rename)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from robustfusion.atomic import save_figure

#: One curve: severities, means over seeds and standard deviations over seeds.
Curve = tuple[Sequence[float], Sequence[float], Sequence[float]]


def plot_panels(
    panels: Mapping[str, Mapping[str, Curve]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One subplot per panel, one line per method (mean over seeds, band = ± one std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(1, len(panels))
    columns = min(4, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True
    )
    methods = sorted({m for curves in panels.values() for m in curves})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for axis, (name, curves) in zip(axes.flat, panels.items(), strict=False):
        for method, (xs, means, stds) in curves.items():
            low = [m - s for m, s in zip(means, stds, strict=True)]
            high = [m + s for m, s in zip(means, stds, strict=True)]
            axis.plot(xs, means, marker="o", markersize=3, label=method, color=colours[method])
            axis.fill_between(xs, low, high, alpha=0.15, color=colours[method])
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.grid(alpha=0.3)
    for axis in axes[:, 0]:
        axis.set_ylabel(ylabel, fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    return save_figure(figure, path)
