"""The benchmark report: normalised AUC, PCR, tables and figures from a results.csv."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from robustfusion.errors import DataError
from robustfusion.evaluation import plots
from robustfusion.evaluation.report import (
    SEVERITY_AXES,
    normalised_auc,
    pcr,
    read_rows,
    write_report,
    write_results_page,
)
from robustfusion.evaluation.results import ResultsTable

BASE = ("dataset", "method", "fusion", "seed", "corruption", "severity", "target", "accuracy",
        "macro_f1", "ece", "view", "num_samples")  # fmt: skip


def test_normalised_auc_and_pcr_hand_examples() -> None:
    # Trapezoids over [0, 1, 3]: (1 + 0.8) / 2 * 1 + (0.8 + 0.4) / 2 * 2 = 0.9 + 1.2 = 2.1; / 3.
    assert normalised_auc([0, 1, 3], [1.0, 0.8, 0.4]) == pytest.approx(0.7)
    assert normalised_auc([3, 0, 1], [0.4, 1.0, 0.8]) == pytest.approx(0.7)  # order-free
    assert normalised_auc([0, 2], [0.5, 0.5]) == pytest.approx(0.5)
    assert pcr(0.8, 0.6) == pytest.approx(0.25)
    assert pcr(0.8, 0.9) == pytest.approx(-0.125)


def _row(
    method: str,
    seed: int,
    corruption: str,
    severity: float,
    target: str,
    acc: float,
    **extra: float | str,
) -> dict:
    return {
        "dataset": "toy", "method": method, "fusion": "concat", "seed": seed, "corruption": corruption,
        "severity": severity, "target": target, "accuracy": acc, "macro_f1": acc, "ece": 0.05,
        "view": "", "num_samples": 10, **extra,
    }  # fmt: skip


def test_report_tables_and_figures(tmp_path: Path) -> None:
    table = ResultsTable(tmp_path / "results.csv")
    for seed, drop in ((0, 0.2), (1, 0.4)):
        table.add(_row("static", seed, "none", 0.0, "all", 1.0, weight_a=0.5, weight_b=0.5))
        for target in ("all", "each", "a"):
            table.add(
                _row("static", seed, "gaussian", 0.0, target, 1.0, weight_a=0.5, weight_b=0.5)
            )
            table.add(
                _row(
                    "static", seed, "gaussian", 2.0, target, 1.0 - drop, weight_a=0.3, weight_b=0.7
                )
            )
        table.add(_row("static", seed, "missing_subset", 1.0, "a", 0.5))
    meta = {
        "dataset": "toy",
        "modalities": ["a", "b"],
        "methods": ["static"],
        "grid": {
            "severities": {"gaussian": [0.0, 2.0]},
            "targets": {"gaussian": ["all", "each", "a"]},
            "missing_subsets": ["a"],
        },
    }
    (tmp_path / "benchmark.json").write_text(json.dumps(meta))
    text = write_report(tmp_path).read_text()
    # Clean accuracy 1 for both seeds; nAUC = (1 + 0.8) / 2 = 0.9 and (1 + 0.6) / 2 = 0.8.
    assert "| static | 1.0000 ± 0.0000 |" in text
    assert "0.8500 ± 0.0500" in text
    # PCR = (1 - 0.5) / 1 = 0.5 for both seeds.
    assert "| a | 0.500 (+0.500) |" in text
    assert "gaussian 0, 0.5, 1, 2, 4, 8" in text  # default grids documented
    assert "weight of the corrupted modality" not in text.split("## Modality weights")[0]
    for figure in ("figures/accuracy_gaussian.png", "figures/weight_gaussian.png"):
        assert figure in text
        assert (tmp_path / figure).stat().st_size > 1000


def test_report_needs_results(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="robustfusion benchmark"):
        write_report(tmp_path)


# ----------------------------------------------------------------- synthetic benchmark folders

Accuracy = Callable[[str, int, str, float, str, str], float]


def _toy_accuracy(method: str, seed: int, corruption: str, severity: float, target: str,
                  weights: str) -> float:  # fmt: skip
    """A method-dependent decay; twins 0.02 worse, uniform weights 0.03 worse, oracle 0.05
    better at every corrupted cell; seed 1 shifts everything by 0.01."""
    robust = {"static": 0.10, "udml": 0.05, "udml~uniform": 0.05}[method]
    acc = 0.95 + 0.01 * seed - robust * severity
    if corruption in ("none", "missing_subset") or severity == 0:
        return 0.95 + 0.01 * seed if corruption != "missing_subset" else 0.5 + 0.01 * seed
    if method.endswith("~uniform"):
        acc -= 0.02
    acc += {"learned": 0.0, "uniform": -0.03, "oracle": 0.05}[weights]
    return acc


def _bench(
    folder: Path,
    methods: Sequence[str] = ("static", "udml"),
    seeds: Sequence[int] = (0, 1),
    severities: dict[str, list[float]] | None = None,
    targets: dict[str, list[str]] | None = None,
    controls: bool = False,
    accuracy: Accuracy = _toy_accuracy,
    dataset: str = "toy",
    skipped: list[dict[str, str]] | None = None,
) -> Path:
    """A benchmark folder (results.csv in the benchmark's schema, benchmark.json) without training."""
    folder.mkdir(parents=True, exist_ok=True)
    severities = severities or {"gaussian": [0.0, 1.0, 2.0, 3.0], "missing": [0.0, 0.5]}
    targets = targets or {c: ["all", "each"] for c in severities}
    modalities = ["a", "b"]
    rows = []
    runs = [*methods] + ([f"{m}~uniform" for m in methods if m != "static"] if controls else [])
    for method in runs:
        modes = (
            ("learned", "uniform", "oracle") if controls and method != "static" else ("learned",)
        )
        if method.endswith("~uniform"):
            modes = ("learned",)
        for seed in seeds:
            cells = [("none", 0.0, "all"), ("missing_subset", 1.0, "a")]
            cells += [(c, s, t) for c, ss in severities.items() for t in targets[c] for s in ss]
            for corruption, severity, target in cells:
                for weights in modes:
                    if weights != "learned" and (severity == 0 or corruption == "none"):
                        continue
                    acc = accuracy(method, seed, corruption, severity, target, weights)
                    w_a = 0.5 if method == "static" else 0.5 - 0.05 * severity
                    rows.append(
                        _row(
                            method,
                            seed,
                            corruption,
                            severity,
                            target,
                            acc,
                            weights=weights,
                            weight_a=w_a,
                            weight_b=1 - w_a,
                        )  # fmt: skip
                    )
    columns = [*BASE, "weight_a", "weight_b", "weights"]
    with open(folder / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    grid: dict[str, Any] = {"severities": severities, "targets": targets, "missing_subsets": ["a"]}
    if skipped:
        grid["skipped"] = skipped
    meta = {"dataset": dataset, "modalities": modalities, "methods": list(methods), "grid": grid,
            "base_config": {"epochs": 3}}  # fmt: skip
    (folder / "benchmark.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """What every figure drew, by file name: axis titles and, per curve, colour, marker, points."""
    import matplotlib.collections
    import matplotlib.container

    seen: dict[str, dict[str, Any]] = {}
    original = plots.save_figure

    def record(figure: Any, path: Path, dpi: int = 110) -> Path:
        axes = [a for a in figure.axes if a.get_visible()]
        seen[Path(path).name] = {
            "xlabels": {a.get_xlabel() for a in axes},
            "lines": [
                (line.get_label(), line.get_color(), line.get_marker(), len(line.get_xdata()),
                 line.get_linestyle())  # fmt: skip
                for a in axes for line in a.get_lines() if not line.get_label().startswith("_")
            ],
            "bands": sum(
                isinstance(c, matplotlib.collections.PolyCollection) for a in axes for c in a.collections
            ),
            "errorbars": sum(
                isinstance(c, matplotlib.container.ErrorbarContainer) for a in axes for c in a.containers
            ),
        }  # fmt: skip
        return original(figure, path, dpi)

    monkeypatch.setattr(plots, "save_figure", record)
    return seen


def test_axes_units_markers_and_one_colour_per_method(
    tmp_path: Path, drawn: dict[str, dict[str, Any]]
) -> None:
    write_report(_bench(tmp_path / "both"))
    both = {name: dict(d) for name, d in drawn.items()}
    drawn.clear()
    write_report(_bench(tmp_path / "udml", methods=("udml",)))
    assert drawn["accuracy_gaussian.png"]["xlabels"] == {SEVERITY_AXES["gaussian"]}
    assert both["accuracy_missing.png"]["xlabels"] == {SEVERITY_AXES["missing"]}
    colours = {}
    for figures in (both, drawn):
        for figure in figures.values():
            for label, colour, marker, points, _ in figure["lines"]:
                colours.setdefault(label, set()).add(colour)
                assert marker not in ("", "None", None)  # a marker on every point
                assert points >= 2
    assert colours["udml"] == {plots.method_style("udml")["color"]}
    assert colours["static"] == {plots.method_style("static")["color"]}
    assert colours["udml"] != colours["static"]


def test_method_styles_are_stable_and_distinct() -> None:
    registered = [plots.method_style(m)["color"] for m in plots.METHOD_STYLES]
    assert len(set(registered)) == len(registered)
    assert plots.method_style("mwam+qmf") == plots.method_style("mwam+qmf")
    assert plots.method_style("mwam+qmf")["color"] in plots.OTHER_COLOURS
    twin = plots.method_style("udml~uniform")
    assert twin["color"] == plots.method_style("udml")["color"]
    assert twin["linestyle"] == "--" and twin["markerfacecolor"] == "white"


def test_few_severities_are_points_with_error_bars_not_smooth_bands(
    tmp_path: Path, drawn: dict[str, dict[str, Any]]
) -> None:
    write_report(_bench(tmp_path, severities={"gaussian": [0.0, 1.0, 4.0], "blur": [0, 1, 2, 3]}))
    few, many = drawn["accuracy_gaussian.png"], drawn["accuracy_blur.png"]
    assert few["errorbars"] == 4 and few["bands"] == 0  # 2 methods x 2 targets
    assert all(style == ":" for *_, style in few["lines"])
    assert many["errorbars"] == 0 and many["bands"] == 4


def test_quick_grid_still_has_a_weight_figure(tmp_path: Path) -> None:
    text = write_report(
        _bench(tmp_path, severities={"gaussian": [0.0, 1.0, 4.0], "missing": [0.0, 0.5]})
    ).read_text()
    assert "figures/weight_gaussian.png" in text
    assert "weight of each modality under target `each`" in text
    assert (tmp_path / "figures" / "weight_gaussian.png").stat().st_size > 1000
    assert not (tmp_path / "figures" / "weight_missing.png").exists()


def test_pcr_never_prints_minus_zero(tmp_path: Path) -> None:
    def accuracy(method: str, seed: int, corruption: str, *_: Any) -> float:
        # the missing-subset accuracy a hair above the clean one: PCR -1e-9
        return 0.9 + (1e-9 if corruption == "missing_subset" else 0.0) + 0.0 * seed

    text = write_report(_bench(tmp_path, accuracy=accuracy)).read_text()
    pcr_table = text.split("## Missing modalities (PCR)")[1].split("##")[0]
    assert "| a | 0.900 (0.000) | 0.900 (0.000) |" in pcr_table
    assert "| **mean PCR** | 0.000 | 0.000 |" in pcr_table
    assert "-0.000" not in text


def test_blur_skips_are_listed(tmp_path: Path) -> None:
    skipped = [
        {"corruption": "blur", "target": "a", "reason": "a vector: its features have no order"},
        {"corruption": "blur", "target": "b", "reason": "a vector: its features have no order"},
    ]
    severities = {"gaussian": [0.0, 1.0, 2.0, 3.0], "blur": [0.0, 1.0]}
    targets = {"gaussian": ["all", "each"], "blur": []}  # blur applies to no modality here
    folder = _bench(tmp_path, severities=severities, targets=targets, skipped=skipped)
    text = write_report(folder).read_text()
    assert "- `blur` not applied to `a`, `b`: a vector: its features have no order" in text
    assert (
        "- `blur`, severity = Gaussian sigma (pixels / bins): 0, 1; targets none (see below)"
        in text
    )
    assert not (tmp_path / "figures" / "accuracy_blur.png").exists()


def test_weights_section_deltas_by_hand(tmp_path: Path) -> None:
    text = write_report(_bench(tmp_path, controls=True)).read_text()
    section = text.split("## Do the weights matter?")[1].split("\n## ")[0]
    # _toy_accuracy: twin 0.02 worse, uniform 0.03 worse, oracle 0.05 better, in every cell.
    for corruption in ("`gaussian`", "`missing`", "**all**"):
        assert f"| udml | {corruption} | +0.0200 ± 0.0000 | +0.0300 ± 0.0000 | +0.0500 ± 0.0000 | 2 |" in section  # fmt: skip
    assert "| static |" not in section  # no per-sample weights, no controls
    assert "| udml | gaussian | each | 3 | +0.0200 ± 0.0000 |" in section
    # the main tables show the methods' own weights only, no twin
    assert "udml~uniform" not in text.split("## Do the weights matter?")[0]


def test_weights_section_omitted_with_a_reason(tmp_path: Path) -> None:
    text = write_report(_bench(tmp_path)).read_text()
    section = text.split("## Do the weights matter?")[1].split("\n## ")[0]
    assert section.strip().startswith("Omitted: results.csv has no weight-control rows")
    assert len(section.strip().splitlines()) == 1


def test_read_rows_keeps_weight_modes_apart_and_drops_a_torn_line(tmp_path: Path) -> None:
    folder = _bench(tmp_path, controls=True)
    rows = read_rows(folder / "results.csv")
    modes = {r["weights"] for r in rows if r["method"] == "udml" and r["severity"] == "1.0"}
    assert modes == {"learned", "uniform", "oracle"}
    with open(folder / "results.csv", "a") as handle:
        handle.write("toy,udml,concat,0,gauss")  # a kill mid-write
    assert len(read_rows(folder / "results.csv")) == len(rows)


def test_results_page_tables_tests_and_figures(tmp_path: Path) -> None:
    def noisy(method: str, seed: int, corruption: str, severity: float, target: str,
              weights: str) -> float:  # fmt: skip
        # udml's clean accuracy differs from static's by seed-dependent noise (not significant);
        # its robustness is consistently better (significant)
        base = _toy_accuracy(method, seed, corruption, severity, target, weights)
        if corruption == "none" and method == "udml":
            return base + (0.01, -0.02, 0.015)[seed]
        return base + 0.001 * seed * seed

    first = _bench(tmp_path / "b1", seeds=(0, 1, 2), controls=True, accuracy=noisy, dataset="mfeat")
    second = _bench(tmp_path / "b2", seeds=(0, 1, 2), dataset="avdigits")
    page = write_results_page(
        [first, second], tmp_path / "docs" / "results.md", "robustfusion benchmark ...", 3725.4
    )
    text = page.read_text()
    assert text.splitlines()[0] == "# Results"
    assert "wall time **1 h 02 min 05 s**" in text
    assert "```bash\nrobustfusion benchmark ...\n```" in text
    mfeat = text.split("## mfeat")[1].split("## avdigits")[0]
    header = next(li for li in mfeat.splitlines() if li.startswith("| method |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:6] == ["method", "clean accuracy", "macro-F1", "ECE", "nAUC gaussian", "nAUC missing"]  # fmt: skip
    assert columns[6:] == ["mean PCR", "Δ vs uniform twin", "Δ_inf uniform at test", "headroom to oracle", "seeds"]  # fmt: skip
    udml = next(li for li in mfeat.splitlines() if li.startswith("| udml |"))
    cells = [c.strip() for c in udml.strip("|").split("|")]
    assert cells[1].endswith("†")  # clean accuracy: +0.01, -0.02, +0.015 vs static
    assert not cells[4].endswith("†")  # nAUC gaussian: better by the same amount every seed
    assert cells[7:10] == ["+0.020 ± 0.000", "+0.030 ± 0.000", "+0.050 ± 0.000"]
    static = next(li for li in mfeat.splitlines() if li.startswith("| static |"))
    assert "†" not in static and static.count("–") == 3  # the reference; no weight controls
    avdigits = text.split("## avdigits")[1]
    assert "Δ vs uniform twin" not in avdigits  # no controls in that benchmark
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert "results/mfeat/accuracy_gaussian.png" in links
    assert "results/avdigits/weight_gaussian.png" in links
    for link in links:
        assert (page.parent / link).stat().st_size > 1000


def test_results_page_names_reports_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _bench(tmp_path / "runs" / "b1", seeds=(0,), dataset="mfeat")
    monkeypatch.chdir(tmp_path)
    text = write_results_page([folder.resolve()], Path("docs/results.md"), "cmd", 1.0).read_text()
    assert "Full report: `runs/b1/report.md`." in text
    assert str(tmp_path) not in text
