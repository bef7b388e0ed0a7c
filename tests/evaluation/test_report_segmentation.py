"""The report of a segmentation benchmark: every table, summary, figure and claim is driven by the
segmentation task's metric specs (mIoU the primary metric; pixel and mean class accuracy shown)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from robustfusion.errors import DataError
from robustfusion.evaluation import plots
from robustfusion.evaluation.report import (
    PART_FILE,
    Folder,
    dataset_columns,
    pcr,
    weight_effects,
    write_report,
    write_results_page,
)
from robustfusion.evaluation.report.claims import claim_rows, claim_table
from robustfusion.evaluation.results import results_columns
from robustfusion.tasks import MetricSpec, Task, task_of
from robustfusion.tasks.classification import Classification

SEG = task_of("segmentation")
MODALITIES = ("rgb", "depth")
SEEDS = (0, 1)
SEVERITIES = [0.0, 1.0, 2.0]
TARGETS = ["all", "each", "rgb", "depth"]
#: Per method: clean mIoU at seed 0, its loss per unit of gaussian severity, and the mIoU kept
#: with a modality absent (a fraction of the clean one: PCR = 1 - fraction).
METHODS = {"static": (0.60, 0.10, 0.5), "udml": (0.62, 0.05, 0.75)}
#: The other metrics are offsets from the primary one (mIoU): a table or summary that read them
#: instead of mIoU would show other numbers.
OFFSETS = (0.0, 0.2, 0.1)


def _miou(method: str, seed: int, corruption: str, severity: float, weights: str) -> float:
    base = method.removesuffix("~uniform")
    clean, slope, kept = METHODS[base]
    value = clean + 0.01 * seed
    if corruption == "missing_subset":
        return kept * value
    if corruption == "none" or severity == 0:
        return value
    value -= slope * severity
    if method.endswith("~uniform"):
        value -= 0.02
    return value + {"learned": 0.0, "uniform": -0.03, "oracle": 0.05}[weights]


def _segmentation_folder(
    path: Path,
    record_task: bool = False,
    part: dict[str, Any] | None = None,
    task: Task = SEG,
    dataset: str = "rgbd_toy",
) -> Path:
    """A benchmark folder of ``task`` (segmentation) as the benchmark writes it (results.csv with
    the task's columns, benchmark.json), with weight controls for udml; no training."""
    path.mkdir(parents=True, exist_ok=True)
    columns = results_columns(task, MODALITIES)
    rows = []
    for method in ("static", "udml", "udml~uniform"):
        modes = ("learned", "uniform", "oracle") if method == "udml" else ("learned",)
        for seed in SEEDS:
            cells = [("none", 0.0, "all")]
            cells += [("missing_subset", 1.0, m) for m in MODALITIES]
            cells += [("gaussian", s, t) for t in TARGETS for s in SEVERITIES]
            for corruption, severity, target in cells:
                for weights in modes:
                    if weights != "learned" and (severity == 0 or corruption != "gaussian"):
                        continue
                    miou = _miou(method, seed, corruption, severity, weights)
                    w_rgb = 0.5 if method == "static" else 0.5 - 0.1 * severity
                    rows.append(
                        {"dataset": dataset, "method": method, "fusion": "concat",
                         "seed": seed, "corruption": corruption, "severity": severity,
                         "target": target, "weights": weights,
                         **{spec.name: miou + offset
                            for spec, offset in zip(task.metrics, OFFSETS, strict=True)},
                         "view": "", "num_samples": 16, "config_hash": f"{method}-{seed}",
                         "weight_rgb": w_rgb, "weight_depth": 1 - w_rgb,
                         **{f"{task.unimodal_prefix}{m}": "" for m in MODALITIES}}
                    )  # fmt: skip
    with open(path / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    meta: dict[str, Any] = {
        "dataset": dataset,
        "modalities": list(MODALITIES),
        "methods": ["static", "udml", "udml~uniform"],
        "seeds": list(SEEDS),
        "weight_controls": True,
        "twins": {"udml~uniform": "udml"},
        "grid": {
            "severities": {"gaussian": SEVERITIES},
            "targets": {"gaussian": TARGETS},
            "skipped": [],
            "missing_subsets": list(MODALITIES),
            "eval_seed": 0,
            "noise_draws": 1,
        },
        "base_config": {"epochs": 3, "dataset": dataset},
        "method_overrides": {},
        "jobs": 1,
        "threads_per_job": 1,
        "runs": {},
    }
    if record_task:
        meta["task"] = "segmentation"
    (path / "benchmark.json").write_text(json.dumps(meta))
    if part is not None:
        (path / PART_FILE).write_text(json.dumps(part))
    return path


def _table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after ``heading``."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [r for r in rows if not set("".join(r)) <= {"-"}]


def _headers(text: str) -> list[list[str]]:
    """The header row of every Markdown table of ``text``."""
    lines = text.splitlines()
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line, below in zip(lines, lines[1:], strict=False)
        if line.startswith("|") and below.startswith("|---")
    ]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Per figure file: its title and axis titles."""
    seen: dict[str, dict[str, Any]] = {}
    original = plots.save_figure

    def record(figure: Any, path: Path, dpi: int = 110) -> Path:
        axes = [a for a in figure.axes if a.get_visible()]
        seen[Path(path).name] = {
            "title": figure._suptitle.get_text() if figure._suptitle else "",
            "ylabels": {a.get_ylabel() for a in axes} - {""},
        }
        return original(figure, path, dpi)

    monkeypatch.setattr(plots, "save_figure", record)
    return seen


@pytest.mark.parametrize("record_task", [False, True])
def test_the_task_of_a_folder(tmp_path: Path, record_task: bool) -> None:
    folder = Folder.read(_segmentation_folder(tmp_path, record_task))
    assert folder.task is SEG and folder.results.task is SEG
    assert folder.results.primary.name == "miou" and folder.results.primary.title == "mIoU"
    # the unimodal figures are read with the task's prefix: the modalities without benchmark.json
    rows = folder.all_rows
    assert Folder(tmp_path, {}, rows).modalities == sorted(MODALITIES)
    assert SEG.unimodal_prefix == "umiou_" and "umiou_rgb" in rows[0]


def test_a_results_file_of_no_task_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("dataset,method,fusion,seed,corruption,severity,target\n")
    with pytest.raises(DataError, match="no task's metric columns"):
        Folder.read(tmp_path)


def test_segmentation_report(tmp_path: Path, drawn: dict[str, dict[str, Any]]) -> None:
    text = write_report(_segmentation_folder(tmp_path)).read_text()
    assert "model selected on validation mIoU." in text
    # every metric of the task in the clean table, none of classification's
    assert _table(text, "## Clean test mIoU") == [
        ["method", "mIoU", "pixel accuracy", "mean class accuracy", "seeds"],
        ["static", "0.6050 ± 0.0050", "0.8050 ± 0.0050", "0.7050 ± 0.0050", "2"],
        ["udml", "0.6250 ± 0.0050", "0.8250 ± 0.0050", "0.7250 ± 0.0050", "2"],
    ]
    for header in _headers(text):
        assert not {"accuracy", "macro-F1", "ECE"} & set(header), header
    # "accuracy" only ever as part of a segmentation metric's title
    assert re.findall(r"(?<!pixel )(?<!class )\baccuracy", text, flags=re.IGNORECASE) == []
    assert "Accuracy vs severity" not in text
    # nAUC of mIoU: a straight line over [0, 2] averages to its value at 1:
    # static 0.60 + 0.01 seed - 0.10, udml 0.62 + 0.01 seed - 0.05 (pixel accuracy: +0.2)
    assert "## Robustness summary (normalised AUC of mIoU vs severity)" in text
    assert "Mean mIoU over each severity range" in text
    nauc = _table(text, "## Robustness summary")
    assert nauc[0] == ["method", "gaussian/all", "gaussian/each", "mean"]
    assert nauc[1] == ["static", *["0.5050 ± 0.0050"] * 3]
    assert nauc[2] == ["udml", *["0.5750 ± 0.0050"] * 3]
    # the figure of the primary metric, named after it, its axis titled by the spec
    assert "## mIoU vs severity" in text
    assert "![mIoU vs gaussian severity](figures/miou_gaussian.png)" in text
    assert (tmp_path / "figures" / "miou_gaussian.png").stat().st_size > 1000
    assert not (tmp_path / "figures" / "accuracy_gaussian.png").exists()
    assert drawn["miou_gaussian.png"]["ylabels"] == {"mIoU"}
    assert drawn["miou_gaussian.png"]["title"] == "gaussian: test mIoU (mean ± std over seeds)"
    # PCR of mIoU: static keeps half of its mIoU without a modality, udml three quarters
    assert "Test mIoU with the listed modalities absent" in text
    assert _table(text, "## Missing modalities (PCR)")[1:] == [
        ["depth", "0.302 (+0.500)", "0.469 (+0.250)"],
        ["rgb", "0.302 (+0.500)", "0.469 (+0.250)"],
        ["**mean PCR**", "+0.500", "+0.250"],
    ]
    # the weight effects on mIoU
    section = text.split("## Do the weights matter?")[1].split("\n## ")[0]
    assert "MIoU" not in section and "mIoU differences, paired by seed" in section
    assert "they leave mIoU on the table" in section
    assert (
        "| udml | **all** | +0.0200 ± 0.0000 | +0.0300 ± 0.0000 | +0.0500 ± 0.0000 | 2 |" in section
    )


def test_segmentation_claims_use_miou(tmp_path: Path) -> None:
    folder = Folder.read(_segmentation_folder(tmp_path))
    (row,) = claim_rows(folder, ["udml"])
    assert row.static_clean == pytest.approx({0: 0.60, 1: 0.61})
    assert row.clean.by_seed == pytest.approx({0: 0.02, 1: 0.02})
    # under noise: udml - static = 0.02 + 0.05 severity, averaged over severities 1 and 2
    assert list(row.noise) == ["each", "rgb", "depth"]
    for difference in row.noise.values():
        assert difference.by_seed == pytest.approx({0: 0.095, 1: 0.095})
    assert row.ahead_at == {"each": (2, 2), "rgb": (2, 2), "depth": (2, 2)}
    assert row.meets
    lines = claim_table(folder, ["udml"])
    assert lines[0].startswith(
        "**Robust without a clean cost?** Static's clean mIoU 0.605 ± 0.005."
    )
    assert "accuracy" not in "\n".join(lines)
    # (whether a constant difference is "significant" depends on float rounding: † left out)
    assert lines[4].replace(" †", "") == (
        "| udml | +0.020 ± 0.000 | +0.095 ± 0.000 (2/2) | +0.095 ± 0.000 (2/2) | "
        "+0.095 ± 0.000 (2/2) | yes | +0.020 ± 0.000 |"
    )


def test_results_page_of_a_segmentation_and_a_classification_folder(tmp_path: Path) -> None:
    part = {"name": "rgbd_toy", "note": "", "reference": {}, "group": "evaluation",
            "compare": ["udml"]}  # fmt: skip
    segmentation = _segmentation_folder(tmp_path / "seg", part=part)
    titles, table, _ = dataset_columns(Folder.read(segmentation))
    assert titles[:4] == ["clean mIoU", "pixel accuracy", "mean class accuracy", "nAUC gaussian"]
    assert table["udml"]["nAUC gaussian"] == pytest.approx({0: 0.57, 1: 0.58})
    assert table["static"]["clean mIoU"] == pytest.approx({0: 0.60, 1: 0.61})
    classification = _segmentation_folder(
        tmp_path / "cls", task=task_of("classification"), dataset="toy"
    )
    text = write_results_page([segmentation, classification], tmp_path / "r.md", "cmd", 1.0)
    text = text.read_text()
    assert "model selected on validation mIoU or accuracy" in text
    assert "area under mIoU or accuracy vs severity" in text
    assert (
        "for the mIoU, pixel accuracy, mean class accuracy, accuracy, F1, ECE, nAUC and PCR "
        "columns" in text
    )
    summary = text.split("## Robust without a clean cost?")[1].split("\n## ")[0]
    assert "clean mIoU against static, mIoU under Gaussian noise" in summary
    assert "(mIoUs averaged over" in summary
    assert "| rgbd_toy | evaluation | udml | 0.605 | +0.020 ± 0.000" in summary
    seg = text.split("## rgbd_toy")[1].split("\n## ")[0]
    header = next(c for c in _headers(seg) if c[0] == "method" and "seeds" in c)
    assert header[:5] == ["method", "clean mIoU", "pixel accuracy", "mean class accuracy",
                          "nAUC gaussian"]  # fmt: skip
    assert "Static's clean mIoU" in seg and "rgbd_toy/miou_gaussian.png" in seg
    toy = text.split("## toy")[1]
    assert next(c for c in _headers(toy) if "seeds" in c)[:4] == [
        "method", "clean accuracy", "macro-F1", "ECE"
    ]  # fmt: skip


class _LowerIsBetter(Classification):
    """Classification scored on an error rate (lower is better) as its primary metric."""

    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("error", "error", higher_is_better=False),
    )
    primary: ClassVar[str] = "error"


def test_direction_of_a_lower_is_better_primary_metric() -> None:
    assert pcr(0.2, 0.3, higher_is_better=False) == pytest.approx(0.5)  # absence hurts: +
    assert pcr(0.8, 0.6) == pytest.approx(0.25)
    assert math.isnan(pcr(0.0, 0.3, higher_is_better=False))
    rows = [
        {"method": "m", "seed": "0", "corruption": "gaussian", "target": "all", "severity": "1.0",
         "weights": weights, "error": str(error)}
        for weights, error in (("learned", 0.20), ("uniform", 0.25), ("oracle", 0.15))
    ]  # fmt: skip
    effects = weight_effects(rows, _LowerIsBetter())
    # learned weights 0.05 fewer errors than uniform ones: they help (+); the oracle would save
    # another 0.05 (+)
    per = effects["m"][("gaussian", "all", 1.0)]
    assert per["delta_inf"] == pytest.approx({0: 0.05})
    assert per["headroom"] == pytest.approx({0: 0.05})


def test_the_training_line_states_the_decoder_when_the_runs_used_skips() -> None:
    from robustfusion.evaluation.report.tables import settings_used

    run = {"fusion": "concat", "epochs": 20, "hidden_dim": 64}
    skips = {
        "runs": {f"{m}-s0": {"label": m, **run, "decoder": "skips"} for m in ("static", "udml")}
    }
    assert settings_used(skips)[0] == (
        "Training, as the runs used it: fusion concat, decoder skips, epochs 20, hidden_dim 64."
    )
    head = {"runs": {"static-s0": {"label": "static", **run}}}  # head: not recorded (benchmark)
    assert "decoder" not in settings_used(head)[0]
