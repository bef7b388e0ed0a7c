"""The benchmark report: normalised AUC, PCR, tables and figures from a results.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustfusion.errors import DataError
from robustfusion.evaluation.report import normalised_auc, pcr, write_report
from robustfusion.evaluation.results import ResultsTable


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
    **extra: float,
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
    for figure in ("figures/accuracy_gaussian.png", "figures/weight_gaussian.png"):
        assert figure in text
        assert (tmp_path / figure).stat().st_size > 1000


def test_report_needs_results(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="robustfusion benchmark"):
        write_report(tmp_path)
