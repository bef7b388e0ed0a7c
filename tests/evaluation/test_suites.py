"""Named suites: every part is a resumable benchmark folder; one results page over all parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustfusion.errors import ConfigError, UnknownNameError
from robustfusion.evaluation import suites
from robustfusion.evaluation.grids import Grid
from robustfusion.evaluation.suites import Suite, SuitePart, get_suite, run_suite


def test_leaderboard_covers_every_method_dataset_and_corruption() -> None:
    from robustfusion.registry import METHODS

    suite = get_suite("leaderboard")
    names = {p.train.get("dataset") for p in suite.parts}
    assert {"mfeat", "avdigits", "fsdd_digits"} <= names
    main = next(p for p in suite.parts if p.name == "avdigits")
    registered = set(METHODS.names())
    assert registered <= {label.split(":")[0] for label in main.methods}
    assert {"udml:preset=paper", "mwam+modality_dropout"} <= set(main.methods)
    assert set(main.grid.severities) == {"gaussian", "salt_pepper", "blur", "missing"}
    assert set(main.grid.modality_targets) == set(main.grid.severities)
    assert main.weight_controls and len(main.seeds) >= 3
    tmc = next(p for p in suite.parts if p.name == "mfeat_tmc_protocol")
    assert tmc.train["dataset_options"]["scaling"] == "minmax" and tmc.reference["method"] == "tmc"


def test_unknown_suite_and_part_names_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown suite"):
        get_suite("leaderbord")
    with pytest.raises(ConfigError, match="has no part"):
        run_suite("leaderboard", tmp_path, parts=("cifar",))


@pytest.mark.slow
def test_a_suite_runs_its_parts_and_writes_one_page(tmp_path: Path) -> None:
    grid = Grid(severities={"gaussian": (0.0, 1.0)}, modality_targets=(), max_missing_subsets=1)
    part = SuitePart(
        name="tiny",
        train={"dataset": "mfeat", "modalities": ["fou", "mor"], "epochs": 1, "batch_size": 128},
        methods=("static", "pe"),
        seeds=(0,),
        grid=grid,
        note="two mfeat views, one epoch",
        reference={"source": "made-up anchors", "method": "pe", "accuracy": {"0": 0.5, "1.0": 0.4}},
    )
    suites._SUITES["tiny-test"] = lambda: Suite("tiny-test", "for the tests", (part,))
    try:
        page = tmp_path / "results.md"
        run_suite("tiny-test", tmp_path / "out", jobs=1, progress=False, results_page=page,
                  command="robustfusion benchmark --suite tiny-test")  # fmt: skip
    finally:
        del suites._SUITES["tiny-test"]
    text = page.read_text()
    assert "robustfusion benchmark --suite tiny-test" in text and "two mfeat views" in text
    assert (
        "| **reference** | 50.00 | 40.00 |" in text
        and "| pe~uniform" not in text.split("Beside")[0]
    )
    log = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert log["invocations"][0]["parts"] == ["tiny"]
    rows = (tmp_path / "out" / "tiny" / "results.csv").read_text()
    assert "pe~uniform" in rows and ",oracle," in rows  # weight controls: twin and swaps
