"""'Robust without a clean cost?' (evaluation/report/claims.py): per-seed differences against
static, the paired tests, the verdict, its tables on the results page; the suite ``sensors``."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from robustfusion.errors import UnknownNameError
from robustfusion.evaluation import suites
from robustfusion.evaluation.report import PART_FILE, Folder, write_results_page
from robustfusion.evaluation.report.claims import (
    CLEAN_TOLERANCE,
    EACH,
    Difference,
    claim_rows,
    claim_summary,
    claim_table,
)
from robustfusion.evaluation.suites import get_suite, run_suite

BASE = ("dataset", "method", "fusion", "seed", "corruption", "severity", "target", "accuracy",
        "macro_f1", "ece", "view", "num_samples", "weight_a", "weight_b", "weights")  # fmt: skip
SEEDS = (0, 1, 2)
SEVERITIES = (0.5, 1.0, 2.0)
STATIC_CLEAN = (0.90, 0.91, 0.92)


# A method: clean differences to static per seed, and per target (`each`, then each modality
# alone) the offsets to static at severities 0.5, 1, 2 plus a per-seed jitter (mean 0, so the
# per-severity means move by the offsets alone and the per-seed differences of the averages are
# mean(offsets) + jitter); None: no result (nan accuracy) under that target.
Spec = dict[str, Any]
JITTER = (0.0, 0.01, -0.01)
NONE = (0.0, 0.0, 0.0)
DEV: dict[str, Spec] = {
    # clean Δ exactly -0.01 (the boundary), ahead on each and on both modalities: meets
    "udml": {"clean": (-0.02, -0.01, 0.0), "each": ((0.02, 0.02, 0.02), JITTER),
             "a": ((0.05, 0.05, 0.05), JITTER), "b": ((0.03, -0.01, 0.01), JITTER)},
    # clean Δ -0.011: just past the tolerance, ahead on each and both modalities: does not meet
    "dms": {"clean": (-0.012, -0.011, -0.010), "each": ((0.03, 0.03, 0.03), (0.01, 0.0, -0.01)),
            "a": ((0.02, 0.02, 0.02), (0.01, 0.0, -0.01)),
            "b": ((0.04, 0.04, 0.04), (0.01, 0.0, -0.01))},
    # clean gain, ahead on each and a, no result on b (nan): does not meet
    "gated": {"clean": (0.0, 0.01, 0.02), "each": ((0.01, 0.01, 0.01), JITTER),
              "a": ((0.02, 0.02, 0.02), JITTER), "b": None},
}  # fmt: skip
EVAL: dict[str, Spec] = {
    # clean gain, ahead on each, behind on b (ahead at one severity only): does not meet
    "udml": {"clean": (0.01, 0.0, 0.02), "each": ((0.04, 0.04, 0.04), JITTER),
             "a": ((0.02, 0.02, 0.02), JITTER), "b": ((-0.03, -0.01, 0.01), JITTER)},
    # clean identical to static (Δ 0, no test possible), ahead on each, identical on b (Δ 0):
    # does not meet
    "dms": {"clean": NONE, "each": ((0.02, 0.02, 0.02), (0.01, 0.0, -0.01)),
            "a": ((0.03, 0.03, 0.03), (0.01, 0.0, -0.01)), "b": (NONE, NONE)},
    # clean gain, ahead on both modalities, behind on each (ahead at one severity): does not meet
    "gated": {"clean": (0.0, 0.01, 0.02), "each": ((-0.02, 0.01, -0.02), JITTER),
              "a": ((0.01, 0.01, 0.01), JITTER), "b": ((0.02, 0.02, 0.02), (0.01, 0.0, -0.01))},
}  # fmt: skip
METHODS = ("static", "udml", "dms", "gated")
#: static's accuracy under noise at severity 0 (minus 0.1 per unit of severity, plus 0.01 per seed)
STATIC_NOISY = {"each": 0.75, "a": 0.80, "b": 0.70}


def _static_noisy(target: str, severity: float, seed: int) -> float:
    return STATIC_NOISY[target] - 0.1 * severity + 0.01 * seed


def _accuracy(specs: dict[str, Spec], method: str, seed: int, corruption: str, severity: float,
              target: str) -> float:  # fmt: skip
    spec = specs.get(method)
    if corruption == "none" or severity == 0:
        return STATIC_CLEAN[seed] + (spec["clean"][seed] if spec else 0.0)
    if target not in STATIC_NOISY:
        return 0.6 - 0.1 * severity + 0.01 * seed  # all: not read by the claim
    value = _static_noisy(target, severity, seed)
    if spec:
        if spec[target] is None:
            return math.nan
        offsets, jitter = spec[target]
        value += offsets[SEVERITIES.index(severity)] + jitter[seed]
    return value


def _folder(
    path: Path,
    specs: dict[str, Spec],
    dataset: str,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = SEEDS,
    part: dict[str, Any] | None = None,
) -> Path:
    """A benchmark folder (results.csv in the benchmark's schema, benchmark.json) and, with
    ``part``, the suite's ``suite_part.json``; no training."""
    path.mkdir(parents=True, exist_ok=True)
    severities = [0.0, *SEVERITIES]
    targets = ["all", "each", "a", "b"]
    rows = []
    for method in methods:
        for seed in seeds:
            cells = [("none", 0.0, "all")]
            cells += [("gaussian", s, t) for t in targets for s in severities]
            for corruption, severity, target in cells:
                acc = _accuracy(specs, method, seed, corruption, severity, target)
                rows.append(
                    {"dataset": dataset, "method": method, "fusion": "concat", "seed": seed,
                     "corruption": corruption, "severity": severity, "target": target,
                     "accuracy": acc, "macro_f1": acc, "ece": 0.05, "view": "",
                     "num_samples": 100, "weight_a": 0.5, "weight_b": 0.5, "weights": "learned"}
                )  # fmt: skip
    with open(path / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, BASE, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "dataset": dataset,
        "modalities": ["a", "b"],
        "methods": list(methods),
        "grid": {"severities": {"gaussian": severities}, "targets": {"gaussian": targets}},
        "base_config": {"epochs": 3},
    }
    (path / "benchmark.json").write_text(json.dumps(meta))
    if part is not None:
        (path / PART_FILE).write_text(json.dumps(part))
    return path


def _t2_p(diffs: Sequence[float]) -> float:
    """Two-sided p of a one-sample t-test of three values against 0 (t distribution with 2
    degrees of freedom: P(|T| > t) = 1 - t / sqrt(2 + t^2))."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = abs(mean) / (sd / math.sqrt(n))
    return 1 - t / math.sqrt(2 + t * t)


def _rows(tmp_path: Path, specs: dict[str, Spec], name: str = "dev") -> dict[str, Any]:
    folder = Folder.read(_folder(tmp_path / name, specs, f"toy_{name}"))
    return {r.method: r for r in claim_rows(folder, ["udml", "dms", "static", "absent", "gated"])}


# ------------------------------------------------------------------------------ claim_rows


def test_per_seed_differences_and_paired_tests(tmp_path: Path) -> None:
    rows = _rows(tmp_path, DEV)
    # in the order asked; static is the reference; absent methods are skipped
    assert list(rows) == ["udml", "dms", "gated"]
    udml = rows["udml"]
    assert udml.static_clean == pytest.approx(dict(enumerate(STATIC_CLEAN)))
    # method - static, per seed: clean, then under noise on `each` (target "each", not "all")
    # and on each modality alone, averaged over the non-zero severities (mean of the offsets +
    # the seed's jitter); `each` first, then the modalities in the folder's order
    assert EACH == "each" and list(udml.noise) == ["each", "a", "b"]
    assert udml.clean.by_seed == pytest.approx({0: -0.02, 1: -0.01, 2: 0.0})
    assert udml.noise["each"].by_seed == pytest.approx({0: 0.02, 1: 0.03, 2: 0.01})
    assert udml.noise["a"].by_seed == pytest.approx({0: 0.05, 1: 0.06, 2: 0.04})
    assert udml.noise["b"].by_seed == pytest.approx({0: 0.01, 1: 0.02, 2: 0.0})
    assert udml.clean.mean == pytest.approx(-0.01)
    assert udml.noise["each"].mean == pytest.approx(0.02)
    assert udml.clean.p == pytest.approx(_t2_p([-0.02, -0.01, 0.0]))  # 1 - sqrt(0.6) ≈ 0.225
    assert udml.noise["each"].p == pytest.approx(_t2_p([0.02, 0.03, 0.01]))  # ≈ 0.074
    assert udml.noise["a"].p == pytest.approx(_t2_p([0.05, 0.06, 0.04]))  # ≈ 0.013
    dms = rows["dms"]
    assert dms.noise["each"].by_seed == pytest.approx({0: 0.04, 1: 0.03, 2: 0.02})
    assert dms.noise["each"].p == pytest.approx(_t2_p([0.04, 0.03, 0.02]))  # ≈ 0.035
    assert dms.clean.by_seed == pytest.approx({0: -0.012, 1: -0.011, 2: -0.010})
    assert dms.clean.mean < 0 and dms.clean.p == pytest.approx(_t2_p([-0.012, -0.011, -0.010]))
    # the test is two-sided: the same differences with the other sign give the same p
    flipped = Difference({s: -d for s, d in dms.clean.by_seed.items()}, dms.clean.p)
    assert flipped.mean == pytest.approx(0.011)
    from robustfusion.evaluation.report.statistics import paired_p_value

    assert paired_p_value(flipped.by_seed, None) == pytest.approx(dms.clean.p)
    # no result (nan) on b for any seed: no per-seed difference, mean and p nan
    gated = rows["gated"]
    assert list(gated.noise) == ["each", "a", "b"] and gated.noise["b"].by_seed == {}
    assert math.isnan(gated.noise["b"].mean) and math.isnan(gated.noise["b"].p)
    assert gated.noise["b"].cell() == "–"
    assert gated.noise["each"].by_seed == pytest.approx({0: 0.01, 1: 0.02, 2: 0.0})
    assert gated.noise["a"].by_seed == pytest.approx({0: 0.02, 1: 0.03, 2: 0.01})
    ev = _rows(tmp_path, EVAL, "eval")["gated"]
    assert ev.noise["each"].by_seed == pytest.approx({0: -0.01, 1: 0.0, 2: -0.02})
    assert ev.noise["each"].p == pytest.approx(_t2_p([-0.01, 0.0, -0.02]))


def test_identical_results_and_one_seed_give_no_test(tmp_path: Path) -> None:
    dms = _rows(tmp_path, EVAL, "eval")["dms"]
    assert dms.clean.by_seed == {0: 0.0, 1: 0.0, 2: 0.0}  # bit-identical to static
    assert math.isnan(dms.clean.p) and dms.clean.cell() == "0.000 ± 0.000 †"
    assert math.isnan(dms.noise["b"].p) and dms.noise["b"].mean == 0.0
    one = Folder.read(_folder(tmp_path / "one", DEV, "toy_one", seeds=(0,)))
    udml = next(r for r in claim_rows(one, ["udml"]) if r.method == "udml")
    assert udml.clean.by_seed == pytest.approx({0: -0.02}) and math.isnan(udml.clean.p)
    assert udml.clean.cell() == "-0.020 ± 0.000 †"  # fewer than 2 seeds: not testable
    assert Difference({}, math.nan).cell() == "–"


def test_meets_at_the_boundaries(tmp_path: Path) -> None:
    dev = _rows(tmp_path, DEV)
    assert CLEAN_TOLERANCE == 0.01
    assert dev["udml"].clean.mean == pytest.approx(-0.01) and dev["udml"].meets  # Δ = -0.01 meets
    assert not dev["dms"].meets  # Δ = -0.011, although ahead on each and on every modality
    assert set(dev["dms"].noise) == {"each", "a", "b"}
    assert all(d.mean > 0 for d in dev["dms"].noise.values())
    # no result on b: not ahead there, whatever the rest
    gated = dev["gated"]
    assert gated.clean.mean == pytest.approx(0.01) and gated.noise["each"].mean > 0
    assert gated.noise["a"].mean > 0 and not gated.meets
    ev = _rows(tmp_path, EVAL, "eval")
    assert ev["udml"].clean.mean > 0 and ev["udml"].noise["each"].mean > 0
    assert ev["udml"].noise["b"].mean < 0 and not ev["udml"].meets
    assert ev["dms"].clean.mean == 0 and ev["dms"].noise["b"].mean == 0  # a tie is not ahead
    assert ev["dms"].noise["each"].mean > 0 and ev["dms"].noise["a"].mean > 0
    assert not ev["dms"].meets
    # behind static on `each` while clean is fine and every single modality is ahead: no
    behind = ev["gated"]
    assert behind.clean.mean == pytest.approx(0.01)
    assert behind.noise["each"].mean == pytest.approx(-0.01)
    assert behind.noise["a"].mean == pytest.approx(0.01)
    assert behind.noise["b"].mean == pytest.approx(0.02)
    assert not behind.meets
    # ... and `each` alone decides it: without it the same row would meet
    singles = {m: d for m, d in behind.noise.items() if m != EACH}
    assert dataclasses.replace(behind, noise=singles).meets


def test_meets_with_exact_decimal_differences() -> None:
    """The boundary of the rule on the arithmetic of accuracies read from a file."""
    from robustfusion.evaluation.report.claims import ClaimRow

    def row(clean: float, noise: dict[str, float]) -> ClaimRow:
        by_seed = {s: 0.9 + 0.01 * s + clean - (0.9 + 0.01 * s) for s in SEEDS}
        return ClaimRow(
            "m",
            {s: 0.9 for s in SEEDS},
            Difference(by_seed, math.nan),
            {m: Difference(dict.fromkeys(SEEDS, d), math.nan) for m, d in noise.items()},
            {m: (0, 3) for m in noise},
        )

    assert row(-0.01, {"a": 0.001, "b": 0.02}).meets
    assert not row(-0.011, {"a": 0.001, "b": 0.02}).meets
    assert not row(0.0, {"a": 0.001, "b": 0.0}).meets
    assert not row(0.0, {"a": 0.001, "b": -0.001}).meets
    assert not row(0.0, {}).meets  # nothing under noise: no verdict for the method
    # `each` is one more target that must be ahead
    assert row(-0.01, {EACH: 0.001, "a": 0.001, "b": 0.02}).meets
    assert not row(-0.01, {EACH: 0.0, "a": 0.001, "b": 0.02}).meets
    assert not row(-0.01, {EACH: -0.001, "a": 0.001, "b": 0.02}).meets
    assert not row(-0.011, {EACH: 0.001, "a": 0.001, "b": 0.02}).meets
    empty_each = row(0.0, {"a": 0.001, "b": 0.02})
    empty_each.noise[EACH] = Difference({}, math.nan)  # each in the grid, no seed to compare
    assert not empty_each.meets
    assert not ClaimRow("m", {}, Difference({}, math.nan), {}, {}).meets


def test_ties_up_to_rounding_are_not_ahead(tmp_path: Path) -> None:
    """Accuracies that tie except for float rounding (differences of 1e-16) are ties: not ahead
    at that severity, and a modality whose average ties does not meet the claim."""
    ties: dict[str, Spec] = {
        # b: offsets summing to 0; the per-seed averages differ from static's by 0 or 1.1e-16
        "udml": {"clean": NONE, "each": ((0.02, 0.02, 0.02), JITTER),
                 "a": ((0.02, 0.02, 0.02), NONE), "b": ((0.02, 0.04, -0.06), NONE)},
        # b at severity 0.5: per-seed values summing to static's; their means differ by 1.1e-16
        "dms": {"clean": NONE, "each": ((0.02, 0.02, 0.02), JITTER),
                "a": ((0.02, 0.02, 0.02), NONE), "b": (NONE, (0.05, 0.04, -0.09))},
        # the same tie on `each`, every single modality ahead
        "gated": {"clean": NONE, "each": ((0.02, 0.04, -0.06), NONE),
                  "a": ((0.02, 0.02, 0.02), NONE), "b": ((0.02, 0.02, 0.02), NONE)},
    }  # fmt: skip
    rows = _rows(tmp_path, ties, "ties")
    assert rows["udml"].noise["b"].mean == pytest.approx(0.0, abs=1e-15)
    assert rows["udml"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (2, 3)}
    assert not rows["udml"].meets
    assert rows["dms"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (0, 3)}
    assert not rows["dms"].meets
    assert rows["gated"].noise["each"].mean == pytest.approx(0.0, abs=1e-15)
    assert rows["gated"].ahead_at == {"each": (2, 3), "a": (3, 3), "b": (3, 3)}
    assert not rows["gated"].meets


def test_ahead_at_counts_severities_by_mean(tmp_path: Path) -> None:
    dev = _rows(tmp_path, DEV)
    assert list(dev["udml"].ahead_at) == ["each", "a", "b"]
    assert dev["udml"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (2, 3)}  # b: +.03 -.01 +.01
    assert dev["dms"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (3, 3)}
    assert dev["gated"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (0, 3)}  # no result on b
    ev = _rows(tmp_path, EVAL, "eval")
    assert ev["udml"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (1, 3)}  # b: -.03 -.01 +.01
    assert ev["dms"].ahead_at == {"each": (3, 3), "a": (3, 3), "b": (0, 3)}  # a tie is not ahead
    assert ev["gated"].ahead_at == {
        "each": (1, 3),
        "a": (3, 3),
        "b": (3, 3),
    }  # each: -.02 +.01 -.02


def test_a_folder_without_static_has_no_claim(tmp_path: Path) -> None:
    folder = Folder.read(_folder(tmp_path / "x", DEV, "toy_x", methods=("udml", "dms")))
    assert claim_rows(folder, ["udml", "dms"]) == []
    assert claim_table(folder, ["udml", "dms"]) == []
    assert claim_summary([("toy_x", "development", folder, ["udml", "dms"])]) == []


# ------------------------------------------------------------------------------ the tables


def test_claim_table_lines(tmp_path: Path) -> None:
    folder = Folder.read(_folder(tmp_path / "dev", DEV, "toy_dev"))
    assert claim_table(folder, ["udml", "dms", "gated"]) == [
        "**Robust without a clean cost?** Static's clean accuracy 0.910 ± 0.008. Δ: method − "
        "static, mean ± std over seeds of the paired differences (**†**: not significant at "
        "p < 0.05); under gaussian noise on `each` (every sample and modality with p = 0.5) and "
        "on one modality at a time, averaged over the grid's non-zero severities, with the "
        "number of severities at which the method's mean is ahead. Meets: clean Δ ≥ −0.01 and "
        "ahead on `each` and on every modality. Weights vs twin: the method − its uniform twin "
        "under gaussian noise on `each` (– where no twin ran).",
        "",
        "| method | clean Δ | gaussian `each`: Δ (ahead at) | gaussian on a: Δ (ahead at) | "
        "gaussian on b: Δ (ahead at) | meets | weights vs twin |",
        "|---|---|---|---|---|---|---|",
        "| udml | -0.010 ± 0.008 † | +0.020 ± 0.008 † (3/3) | +0.050 ± 0.008 (3/3) | "
        "+0.010 ± 0.008 † (2/3) | yes | – |",
        "| dms | -0.011 ± 0.001 | +0.030 ± 0.008 (3/3) | +0.020 ± 0.008 † (3/3) | "
        "+0.040 ± 0.008 (3/3) | **no** | – |",
        "| gated | +0.010 ± 0.008 † | +0.010 ± 0.008 † (3/3) | +0.020 ± 0.008 † (3/3) | "
        "– (0/3) | **no** | – |",
        "",
    ]
    ev = Folder.read(_folder(tmp_path / "eval", EVAL, "toy_eval"))
    assert claim_table(ev, ["gated"])[2:] == [
        "| method | clean Δ | gaussian `each`: Δ (ahead at) | gaussian on a: Δ (ahead at) | "
        "gaussian on b: Δ (ahead at) | meets | weights vs twin |",
        "|---|---|---|---|---|---|---|",
        "| gated | +0.010 ± 0.008 † | -0.010 ± 0.008 † (1/3) | +0.010 ± 0.008 † (3/3) | "
        "+0.020 ± 0.008 † (3/3) | **no** | – |",
        "",
    ]


def test_the_weights_gain_over_the_uniform_twin_is_shown_where_the_twin_ran(
    tmp_path: Path,
) -> None:
    # the twin: udml's clean figures, static's figures under noise (no gain of its own)
    specs = {**DEV, "udml~uniform": {**DEV["udml"], "each": ((0.0, 0.0, 0.0), NONE)}}
    methods = (*METHODS, "udml~uniform")
    folder = Folder.read(_folder(tmp_path / "dev", specs, "toy_dev", methods=methods))
    rows = {r.method: r for r in claim_rows(folder, ["udml", "dms"])}
    gain = rows["udml"].weights_gain
    assert gain is not None and gain.by_seed == pytest.approx({0: 0.02, 1: 0.03, 2: 0.01})
    assert rows["dms"].weights_gain is None  # no dms~uniform in the folder
    table = claim_table(folder, ["udml", "dms"])
    assert table[-3].startswith("| udml |") and table[-3].endswith("| yes | +0.020 ± 0.008 † |")
    assert table[-2].startswith("| dms |") and table[-2].endswith("| **no** | – |")
    summary = claim_summary([("toy_dev", "development", folder, ["udml", "dms"])])
    assert summary[2].endswith("| yes | +0.020 ± 0.008 † |")


def test_claim_summary_over_two_folders_with_groups(tmp_path: Path) -> None:
    dev = Folder.read(_folder(tmp_path / "dev", DEV, "toy_dev"))
    ev = Folder.read(_folder(tmp_path / "eval", EVAL, "toy_eval"))
    lines = claim_summary(
        [
            ("toy_dev", "development", dev, ["udml", "dms", "gated"]),
            ("toy_eval", "", ev, ["dms", "udml", "gated"]),
        ]
    )
    # the worst single modality never is `each`, and a modality without result (gated on b in
    # toy_dev, nan) is the worst: shown as "–", not hidden behind a (smaller) number
    assert lines == [
        "| dataset | group | method | static clean | clean Δ | gaussian `each`: Δ | worst single "
        "modality under gaussian: Δ | meets | weights vs twin (`each`) |",
        "|---|---|---|---|---|---|---|---|---|",
        "| toy_dev | development | udml | 0.910 | -0.010 ± 0.008 † | +0.020 ± 0.008 † | "
        "+0.010 ± 0.008 † (b) | yes | – |",
        "| toy_dev | development | dms | 0.910 | -0.011 ± 0.001 | +0.030 ± 0.008 | "
        "+0.020 ± 0.008 † (a) | **no** | – |",
        "| toy_dev | development | gated | 0.910 | +0.010 ± 0.008 † | +0.010 ± 0.008 † | – (b) "
        "| **no** | – |",
        "| toy_eval | – | dms | 0.910 | 0.000 ± 0.000 † | +0.020 ± 0.008 † | 0.000 ± 0.000 † (b) "
        "| **no** | – |",
        "| toy_eval | – | udml | 0.910 | +0.010 ± 0.008 † | +0.040 ± 0.008 | -0.010 ± 0.008 † (b) "
        "| **no** | – |",
        "| toy_eval | – | gated | 0.910 | +0.010 ± 0.008 † | -0.010 ± 0.008 † | "
        "+0.010 ± 0.008 † (a) | **no** | – |",
        "",
    ]


def test_results_page_has_the_summary_and_a_table_per_part(tmp_path: Path) -> None:
    compare = ["udml", "dms"]
    dev = _folder(tmp_path / "dev", DEV, "toy_dev",
                  part={"name": "toy_dev", "note": "", "reference": {}, "group": "development",
                        "compare": compare})  # fmt: skip
    ev = _folder(tmp_path / "eval", EVAL, "toy_eval",
                 part={"name": "toy_eval", "note": "", "reference": {}, "group": "evaluation",
                       "compare": compare})  # fmt: skip
    # without static: no claim table, no summary row, no crash
    bare = _folder(tmp_path / "bare", DEV, "toy_bare", methods=("udml", "dms"),
                   part={"name": "toy_bare", "note": "", "reference": {}, "group": "evaluation",
                         "compare": compare})  # fmt: skip
    # a part without group/compare (an older suite_part.json): no claim table either
    plain = _folder(tmp_path / "plain", DEV, "toy_plain",
                    part={"name": "toy_plain", "note": "", "reference": {}})  # fmt: skip
    page = write_results_page([dev, ev, bare, plain], tmp_path / "results.md", "cmd", 10.0)
    text = page.read_text()
    summary = text.split("## Robust without a clean cost?")[1].split("\n## ")[0]
    assert (
        "| dataset | group | method | static clean | clean Δ | gaussian `each`: Δ | worst single "
        "modality under gaussian: Δ | meets | weights vs twin (`each`) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| toy_dev | development | udml | 0.910 | -0.010 ± 0.008 † | +0.020 ± 0.008 † | "
        "+0.010 ± 0.008 † (b) | yes | – |\n"
        "| toy_dev | development | dms | 0.910 | -0.011 ± 0.001 | +0.030 ± 0.008 | "
        "+0.020 ± 0.008 † (a) | **no** | – |\n"
        "| toy_eval | evaluation | udml | 0.910 | +0.010 ± 0.008 † | +0.040 ± 0.008 | "
        "-0.010 ± 0.008 † (b) | **no** | – |\n"
        "| toy_eval | evaluation | dms | 0.910 | 0.000 ± 0.000 † | +0.020 ± 0.008 † | "
        "0.000 ± 0.000 † (b) | **no** | – |\n"
    ) in summary
    assert "toy_bare" not in summary and "toy_plain" not in summary
    assert text.index("## Robust without a clean cost?") < text.index("## toy_dev")
    sections = {s.split("\n")[0]: s for s in text.split("\n## ")[1:]}
    assert set(sections) == {
        "Robust without a clean cost?", "toy_dev", "toy_eval", "toy_bare", "toy_plain"
    }  # fmt: skip
    assert "Group of the suite: **development**." in sections["toy_dev"]
    assert "Group of the suite: **evaluation**." in sections["toy_eval"]
    assert "Group of the suite" not in sections["toy_plain"]
    assert (
        "| method | clean Δ | gaussian `each`: Δ (ahead at) | gaussian on a: Δ (ahead at) | "
        "gaussian on b: Δ (ahead at) | meets | weights vs twin |"
    ) in sections["toy_dev"]
    assert (
        "| udml | -0.010 ± 0.008 † | +0.020 ± 0.008 † (3/3) | +0.050 ± 0.008 (3/3) | "
        "+0.010 ± 0.008 † (2/3) | yes | – |"
    ) in sections["toy_dev"]
    assert (
        "| dms | 0.000 ± 0.000 † | +0.020 ± 0.008 † (3/3) | +0.030 ± 0.008 (3/3) | "
        "0.000 ± 0.000 † (0/3) | **no** | – |"
    ) in sections["toy_eval"]
    # gated is in the benchmarks but compared in no part: in no claim table, no summary row
    assert "gated" not in summary
    claim = sections["toy_dev"].split("**Robust without a clean cost?**")[1].split("\n\n![")[0]
    assert "| dms |" in claim and "| gated |" not in claim
    for name in ("toy_bare", "toy_plain"):
        assert "**Robust without a clean cost?**" not in sections[name]
    assert "No `static` run in this benchmark" in sections["toy_bare"]


def test_results_page_without_compared_parts_has_no_summary(tmp_path: Path) -> None:
    plain = _folder(tmp_path / "plain", DEV, "toy_plain")
    text = write_results_page([plain], tmp_path / "results.md", "cmd", 1.0).read_text()
    assert "Robust without a clean cost?" not in text


# ------------------------------------------------------------------------------ suite, registry


def test_registry_description() -> None:
    from robustfusion.registry import DATASETS, METHODS

    entry = next(e for e in DATASETS if e.name == "wdbc")
    assert DATASETS.description("wdbc") == entry.description and entry.description
    assert (
        METHODS.description("static") == next(e for e in METHODS if e.name == "static").description
    )
    with pytest.raises(UnknownNameError, match="unknown dataset 'wdbcc'"):
        DATASETS.description("wdbcc")


def test_sensors_suite_halves_methods_and_seeds() -> None:
    from robustfusion.evaluation.suite_definitions import (
        SENSOR_DEVELOPMENT,
        SENSOR_EVALUATION,
        SENSOR_FRESH,
    )
    from robustfusion.evaluation.variants import parse_variant
    from robustfusion.registry import DATASETS, METHODS

    suite = get_suite("sensors")
    assert suite.name == "sensors" and len(suite.parts) == 9
    halves = {
        g: [p.name for p in suite.parts if p.group == g] for g in {p.group for p in suite.parts}
    }
    assert set(halves) == {"development", "evaluation", "fresh evaluation"}
    assert sorted(halves["development"]) == sorted(SENSOR_DEVELOPMENT)
    assert sorted(halves["evaluation"]) == sorted(SENSOR_EVALUATION)
    assert sorted(halves["fresh evaluation"]) == sorted(SENSOR_FRESH)
    assert len(SENSOR_DEVELOPMENT) == len(SENSOR_EVALUATION) == len(SENSOR_FRESH) == 3
    every = [*SENSOR_DEVELOPMENT, *SENSOR_EVALUATION, *SENSOR_FRESH]
    assert len(every) == len(set(every)) == len({p.train["dataset"] for p in suite.parts})
    for part in suite.parts:
        assert part.train["dataset"] in DATASETS and part.name == part.train["dataset"]
        assert DATASETS.description(part.name) in part.note
        assert "static" in part.methods and part.compare
        assert set(part.compare) <= set(part.methods) and "static" not in part.compare
        assert all(parse_variant(m).name in METHODS for m in part.methods)
        assert len(part.seeds) == len(set(part.seeds)) == 5
        assert "gaussian" in part.grid.severities and "gaussian" in part.grid.modality_targets


def test_run_suite_writes_group_and_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoTraining:
        def __init__(self, config: Any, progress: bool = True) -> None:
            self.out = config.out

        def run(self) -> Path:
            return self.out / "report.md"

    monkeypatch.setattr(suites, "Benchmark", NoTraining)
    run_suite("sensors", tmp_path, parts=("wdbc", "satellite"), progress=False)
    wdbc = json.loads((tmp_path / "wdbc" / PART_FILE).read_text())
    assert wdbc["group"] == "evaluation" and wdbc["name"] == "wdbc"
    assert wdbc["compare"] == list(
        next(p for p in get_suite("sensors").parts if p.name == "wdbc").compare
    )
    assert json.loads((tmp_path / "satellite" / PART_FILE).read_text())["group"] == "development"
