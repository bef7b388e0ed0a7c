"""Benchmark figures (matplotlib, Agg backend), written atomically (temp file + rename).

Every method name has one colour and one marker in every figure of every report
(:func:`method_style`): the registered methods have fixed ones, any other name (``mwam+qmf``, a
new method) gets a colour from a second palette chosen by a CRC-32 of its name. A uniform twin
``<method>~uniform`` is drawn in its method's colour with a dashed line and open markers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robustfusion.atomic import save_figure

#: One curve: severities, means over seeds and standard deviations over seeds.
Curve = tuple[Sequence[float], Sequence[float], Sequence[float]]

#: Fixed colour and marker of each registered method (matplotlib's tab10 colours).
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "static": ("#7f7f7f", "o"),
    "unimodal": ("#8c564b", "v"),
    "pe": ("#9467bd", "P"),
    "tmc": ("#1f77b4", "s"),
    "qmf": ("#ff7f0e", "D"),
    "ogm_ge": ("#bcbd22", "X"),
    "modality_dropout": ("#2ca02c", "^"),
    "mwam": ("#17becf", "<"),
    "dms": ("#e377c2", ">"),
    "udml": ("#d62728", "*"),
}
#: Colours and markers of other method names (matplotlib's tab20b, darker half first).
OTHER_COLOURS = (
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#a55194",
)  # fmt: skip
OTHER_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")
#: Suffix of a uniform twin's method name (same training, weights fixed uniform).
TWIN_SUFFIX = "~uniform"
#: At most this many severities on a curve: points with error bars and a dotted guide line
#: instead of a line with a band, which would suggest a smooth curve between 2-3 points.
FEW_POINTS = 3


def method_style(name: str) -> dict[str, Any]:
    """Matplotlib keyword arguments (colour, marker, line style) of method ``name``."""
    base = name.removesuffix(TWIN_SUFFIX)
    if base in METHOD_STYLES:
        colour, marker = METHOD_STYLES[base]
    else:
        code = zlib.crc32(base.encode("utf-8"))
        colour = OTHER_COLOURS[code % len(OTHER_COLOURS)]
        marker = OTHER_MARKERS[(code // len(OTHER_COLOURS)) % len(OTHER_MARKERS)]
    twin = name.endswith(TWIN_SUFFIX)
    return {
        "color": colour,
        "marker": marker,
        "linestyle": "--" if twin else "-",
        "markerfacecolor": "white" if twin else colour,
    }


def plot_panels(
    panels: Mapping[str, Mapping[str, Curve]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One subplot per panel, one curve per method (mean over seeds, ± one std over seeds).

    A marker on every point. With more than :data:`FEW_POINTS` severities a line and a band;
    with fewer, error bars joined by a thin dotted guide, each method shifted sideways a little so
    that the bars do not hide each other. Ticks sit at the severities measured.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(1, len(panels))
    columns = min(4, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True
    )
    legend: dict[str, Any] = {}
    for axis, (name, curves) in zip(axes.flat, panels.items(), strict=False):
        xs_all = sorted({float(x) for xs, _, _ in curves.values() for x in xs})
        few = len(xs_all) <= FEW_POINTS
        span = (xs_all[-1] - xs_all[0]) if len(xs_all) > 1 else 1.0
        for position, (method, (xs, means, stds)) in enumerate(curves.items()):
            style = method_style(method)
            if few:
                shift = (position - (len(curves) - 1) / 2) * 0.012 * span
                handle = axis.errorbar(
                    [x + shift for x in xs], means, yerr=stds, capsize=3, markersize=5,
                    linewidth=0.8, elinewidth=1.0, label=method,
                    **{**style, "linestyle": ":" if style["linestyle"] == "-" else "--"},
                )  # fmt: skip
            else:
                (handle,) = axis.plot(xs, means, markersize=4, label=method, **style)
                low = [m - s for m, s in zip(means, stds, strict=True)]
                high = [m + s for m, s in zip(means, stds, strict=True)]
                axis.fill_between(xs, low, high, alpha=0.12, color=style["color"], linewidth=0)
            legend.setdefault(method, handle)
        if len(xs_all) <= 8:
            axis.set_xticks(xs_all)
            axis.set_xticklabels([f"{x:g}" for x in xs_all], fontsize=7)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.grid(alpha=0.3)
    for axis in axes[:, 0]:
        axis.set_ylabel(ylabel, fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.legend(
        list(legend.values()),
        list(legend),
        loc="lower center",
        ncol=min(len(legend), 6),
        fontsize=8,
    )
    figure.suptitle(title, fontsize=10)
    legend_rows = math.ceil(len(legend) / 6) if legend else 0
    bottom = (0.08 + 0.22 * legend_rows) / (3.0 * rows)  # the legend's height, in inches
    figure.tight_layout(rect=(0, bottom, 1, 0.95))
    return save_figure(figure, path)
