"""``report.md`` of one benchmark folder: its sections in order, and its figures."""

from __future__ import annotations

from pathlib import Path

from robustfusion.atomic import write_text
from robustfusion.evaluation.report.figures import metric_figures, weight_figures
from robustfusion.evaluation.report.reading import Folder
from robustfusion.evaluation.report.tables import (
    clean_table,
    conflict_table,
    grid_section,
    missing_table,
    overview,
    robustness_table,
    weights_matter,
)

REPORT_FILE = "report.md"


def write_report(out: Path) -> Path:
    """Write ``out/report.md`` and ``out/figures/*.png`` from ``results.csv`` and ``benchmark.json``;
    its tables, summaries and figures are of the folder's task's metrics (:attr:`Folder.task`)."""
    out = Path(out)
    folder = Folder.read(out)
    meta, results, severities, targets = (
        folder.meta,
        folder.results,
        folder.severities,
        folder.targets,
    )
    lines = [f"# Robustness benchmark: {meta.get('dataset', '?')}", ""]
    lines += overview(meta, results)
    lines += clean_table(results)
    lines += robustness_table(results, severities)
    lines += metric_figures(out, results, severities, targets)
    lines += weight_figures(out, results, severities, folder.modalities, targets)
    lines += missing_table(results)
    lines += conflict_table(results)
    lines += weights_matter(folder.all_rows, meta.get("methods", []), folder.task)
    lines += grid_section(meta, severities, targets)
    path = out / REPORT_FILE
    write_text(path, "\n".join(lines) + "\n")
    return path
