"""The results page of several benchmark folders (a suite's ``docs/results.md``): per folder a
table of mean ± std over seeds with paired t-tests against ``static``, reference figures from
elsewhere, and the folder's figures copied beside the page. Each folder's columns are its task's
metrics (:attr:`~robustfusion.evaluation.report.reading.Folder.task`), its nAUC and PCR those of
the task's primary metric; the page's prose names the metrics of the tasks it shows."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from robustfusion.atomic import write_bytes, write_text
from robustfusion.evaluation.report.claims import claim_summary, claim_table
from robustfusion.evaluation.report.document import REPORT_FILE, write_report
from robustfusion.evaluation.report.figures import FIGURES_DIR
from robustfusion.evaluation.report.reading import DEFAULT_TASK, Folder, plural
from robustfusion.evaluation.report.statistics import (
    ALPHA,
    mean_by_seed,
    mean_std,
    paired_p_value,
)
from robustfusion.evaluation.report.summaries import (
    WEIGHT_EFFECTS,
    effect_by_seed,
    mean_pcr_by_seed,
    robustness_by_seed,
    weight_effects,
)
from robustfusion.evaluation.report.tables import compact_digits, mean_pm, settings_used
from robustfusion.evaluation.results import CLEAN
from robustfusion.tasks import task_of
from robustfusion.tasks.base import MetricSpec, Task

#: A suite part's description beside its benchmark folder (written by the suite runner).
PART_FILE = "suite_part.json"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _cell(values: dict[int, float], p: float | None, digits: int = 3, sign: bool = False) -> str:
    """``mean ± std``, with ``†`` when a test was asked for (``p`` not None) and p >= ALPHA or
    the test could not be made."""
    text = mean_pm(list(values.values()), digits, sign)
    if text != "n/a" and p is not None and not p < ALPHA:
        text += " †"
    return text


def metric_column(spec: MetricSpec, task: Task) -> str:
    """The results page's title of a clean metric's column: ``clean <title>`` for the task's
    primary metric (``clean accuracy``, ``clean mIoU``), the spec's title for the others."""
    return f"clean {spec.title}" if spec.name == task.primary else spec.title


def dataset_columns(
    folder: Folder,
) -> tuple[list[str], dict[str, dict[str, dict[int, float]]], set[str]]:
    """The results page's columns for one benchmark folder: their titles, per method and column
    the value of each seed, and the columns tested against 0 rather than against ``static``.

    The columns: the task's metrics on the clean test set, the nAUC of its primary metric per
    corruption, its mean PCR, the weight effects (on the primary metric)."""
    results = folder.results
    metrics = results.metrics
    robustness = robustness_by_seed(results, folder.severities)
    pcrs = mean_pcr_by_seed(results)
    effects = weight_effects(folder.all_rows, folder.task)
    corruptions = [
        c
        for c in folder.severities
        if any(f"{c}/{t}" in robustness[m] for m in robustness for t in ("all", "each"))
    ]
    titles = [metric_column(spec, folder.task) for spec in metrics]
    titles += [f"nAUC {c}" for c in corruptions]
    if any(pcrs.values()):
        titles.append("mean PCR")
    effect_titles = [
        name
        for key, name, _ in WEIGHT_EFFECTS
        if any(effect_by_seed(cells, key) for cells in effects.values())
    ]
    titles += effect_titles
    table: dict[str, dict[str, dict[int, float]]] = {}
    for m in results.methods:
        seeds = results.seeds_of(m)
        row: dict[str, dict[int, float]] = {}
        for title, spec in zip(titles[: len(metrics)], metrics, strict=True):
            row[title] = {
                s: v
                for s in seeds
                if not math.isnan(v := results.value(m, s, CLEAN, "all", 0.0, spec.name))
            }
        for c in corruptions:
            per = robustness.get(m, {})
            row[f"nAUC {c}"] = mean_by_seed([per[k] for k in (f"{c}/all", f"{c}/each") if k in per])
        if "mean PCR" in titles:
            row["mean PCR"] = pcrs.get(m, {})
        for key, name, _ in WEIGHT_EFFECTS:
            if name in effect_titles:
                row[name] = effect_by_seed(effects.get(m, {}), key)
        table[m] = row
    return titles, table, set(effect_titles)


def _reference_table(folder: Folder, reference: dict[str, Any]) -> list[str]:
    """The primary metric per severity of every method beside figures published elsewhere (e.g.
    the official TMC code's: ``reference[<primary metric's name>]``, e.g. ``accuracy``), for one
    corruption and target; ✓ marks the reference method within ``tolerance`` of every anchor.
    Empty when the reference has no figures of the folder's primary metric."""
    metric = folder.results.primary
    if not reference.get(metric.name):
        return []
    corruption = reference.get("corruption", "gaussian")
    target = reference.get("target", "all")
    anchors = {float(k): float(v) for k, v in reference[metric.name].items()}
    levels = sorted(anchors)
    tolerance = float(reference.get("tolerance", 0.01))
    results = folder.results
    header = " | ".join(f"σ={x:g}" if x else "clean" for x in levels)
    lines = [
        f"Beside {reference.get('source', 'a reference')} ({corruption}, target {target}; "
        f"{metric.title} %, mean ± std over seeds):",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(levels),
        "| **reference** | " + " | ".join(f"{100 * anchors[x]:.2f}" for x in levels) + " |",
    ]
    for m in results.methods:
        cells, within = [], True
        for x in levels:
            c, t = (CLEAN, "all") if x == 0 else (corruption, target)
            values = [results.value(m, seed, c, t, x, metric.name) for seed in results.seeds_of(m)]
            values = [v for v in values if not math.isnan(v)]
            if not values:
                cells.append("–")
                within = False
                continue
            mean, std = mean_std(values)
            within &= abs(mean - anchors[x]) <= tolerance + 1e-12
            cells.append(f"{100 * mean:.2f} ± {100 * std:.2f}")
        mark = " ✓" if m == reference.get("method") and within else ""
        lines.append(f"| {m}{mark} | " + " | ".join(cells) + " |")
    method = reference.get("method")
    if method:
        lines += [
            "",
            f"✓: `{method}` lands within {100 * tolerance:g} point(s) of every reference figure.",
        ]
    return [*lines, ""]


def write_results_page(
    folders: Sequence[Path], out: Path, command: str, wall_seconds: float
) -> Path:
    """Write a results page (``docs/results.md``) over benchmark ``folders``: the command and its
    wall time at the top, then per folder (dataset) a table of mean ± std over seeds with paired
    t-tests, and its figures, copied to ``<out without .md>/<dataset>/`` and linked relatively.

    Each folder's ``report.md`` and figures are rewritten first (from its ``results.csv``).
    """
    out = Path(out)
    figures_root = out.parent / out.stem
    read = [Folder.read(Path(f)) for f in folders]
    names = [
        f.meta.get("dataset") or Path(path).name for f, path in zip(read, folders, strict=True)
    ]
    tasks = list({f.task.name: f.task for f in read}.values()) or [task_of(DEFAULT_TASK)]
    primary = _either(t.primary_spec.title for t in tasks)
    tested = _listed(_short(spec.title) for t in tasks for spec in t.metrics)
    lines = [
        "# Results",
        "",
        f"Produced by the command below; wall time **{_duration(wall_seconds)}**.",
        "",
        "```bash",
        command.strip(),
        "```",
        "",
        f"Mean ± std over seeds (test split; model selected on validation {primary}). nAUC "
        f"*c*: normalised area under {primary} vs severity of corruption *c*, mean of targets "
        "`all` and `each` per seed. Mean PCR: performance collapse rate averaged over the "
        "missing-modality subsets (lower is better). Δ vs uniform twin, Δ_inf uniform at test, "
        "headroom to oracle: see *Do the weights matter?* in each benchmark's report, averaged "
        f"over its corrupted cells. **†**: not significant at p < {ALPHA:g}, or not testable "
        f"(fewer than 2 seeds): a paired t-test over seeds against `static` for the {tested}, "
        "nAUC and PCR columns, a one-sample t-test against 0 for the weight columns.",
        "",
    ]
    sections: list[str] = []
    compared: list[tuple[str, str, Folder, list[str]]] = []
    for path, name in zip(folders, names, strict=True):
        path = Path(path)
        write_report(path)
        folder = Folder.read(path)
        part = _part_info(path)
        title = name if names.count(name) == 1 else f"{name} (`{path.name}`)"
        if part.get("name") and part["name"] != name:
            title = f"{part['name']} ({name})"
        slug = name if names.count(name) == 1 else f"{name}-{path.name}"
        sections += _dataset_section(folder, title, figures_root / slug, out.parent, part)
        if part.get("compare"):
            compared.append((title, part.get("group", ""), folder, list(part["compare"])))
    summary = claim_summary(compared)
    if summary:
        titles = list({f.task.name: f.task.primary_spec.title for _, _, f, _ in compared}.values())
        claimed = _either(titles)
        lines += [
            "## Robust without a clean cost?",
            "",
            f"Every compared method on every dataset: clean {claimed} against static, {claimed} "
            "under Gaussian noise with target `each` (every sample and modality with p = 0.5) "
            "against static, and the single modality where noise hurts it most against static "
            f"({_either(plural(t) for t in titles)} averaged over the grid's non-zero "
            "severities); and, where the uniform twin ran, what the learned weights add over it "
            "under `each`. Each dataset's section has every modality.",
            "",
            *summary,
        ]
    lines += sections
    write_text(out, "\n".join(lines) + "\n")
    return out


def _either(titles: Iterable[str]) -> str:
    """Metric titles in running text: ``accuracy``; ``accuracy or mIoU`` on a page of two tasks."""
    return " or ".join(dict.fromkeys(titles))


def _short(title: str) -> str:
    """A metric's title in a list of columns: its last hyphenated part (``macro-F1`` → ``F1``)."""
    return title.rsplit("-", 1)[-1]


def _listed(titles: Iterable[str]) -> str:
    """``accuracy, F1, ECE``: distinct titles in order, comma-separated."""
    return ", ".join(dict.fromkeys(titles))


def _part_info(path: Path) -> dict[str, Any]:
    file = Path(path) / PART_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it (a page committed to a
    repository names the repository's paths, not this machine's), else as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _dataset_section(
    folder: Folder, title: str, figures: Path, page_dir: Path, part: dict[str, Any] | None = None
) -> list[str]:
    results = folder.results
    titles, table, against_zero = dataset_columns(folder)
    part = part or {}
    lines = [f"## {title}", ""]
    if part.get("group"):
        lines += [f"Group of the suite: **{part['group']}**.", ""]
    if part.get("note"):
        lines += [part["note"] + ".", ""]
    lines.append(
        f"Methods {', '.join(results.methods)}; seeds {', '.join(map(str, results.seeds))}. "
        f"Full report: `{_shown_path(folder.path / REPORT_FILE)}`."
    )
    lines.append("")
    lines += settings_used(folder.meta)
    if part.get("reference"):
        lines += _reference_table(folder, part["reference"])
    reference = table.get("static")
    if reference is None:
        lines += ["No `static` run in this benchmark: no test against static.", ""]
    lines += [
        "| method | " + " | ".join(titles) + " | seeds |",
        "|---|" + "---|" * (len(titles) + 1),
    ]
    # clean metrics in their own compact digits; nAUC, PCR and weight effects in the primary's
    digits = {metric_column(spec, folder.task): compact_digits(spec) for spec in results.metrics}
    summary_digits = compact_digits(results.primary)
    for m in results.methods:
        cells = []
        for column in titles:
            values = table[m].get(column, {})
            places = digits.get(column, summary_digits)
            if column in against_zero:
                cells.append(
                    _cell(values, paired_p_value(values, None), places, True) if values else "–"
                )
            else:
                p = None
                if reference is not None and m != "static":
                    p = paired_p_value(values, reference.get(column, {}))
                cells.append(_cell(values, p, places))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {len(results.seeds_of(m))} |")
    lines.append("")
    if part.get("compare"):
        lines += claim_table(folder, part["compare"])
    source = folder.path / FIGURES_DIR
    for png in sorted(source.glob("*.png")) if source.is_dir() else []:
        target = figures / png.name
        write_bytes(target, png.read_bytes())
        link = Path(os.path.relpath(target, page_dir)).as_posix()
        lines += [f"![{title}: {png.stem.replace('_', ' ')}]({link})", ""]
    return lines
