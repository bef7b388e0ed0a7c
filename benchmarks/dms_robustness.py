"""DMS (its variants and its uniform twin) vs static fusion under Gaussian noise, per target.

Trains every (dataset, method, seed) with the project's trainer (model selection on validation),
then evaluates the selected model on the test split with ``evaluate_model`` under Gaussian noise
on each modality alone, on all of them, and on each independently with p = 0.5. Severities are
noise std in standardised units for every modality (images included: their 0-255 scale is turned
off, so one level means the same noise-to-data ratio everywhere). Methods with per-sample weights
are also evaluated with swapped weights (``--weights learned uniform oracle``): the same
checkpoint fused with uniform weights, or with the corrupted modality at weight 0. Resumable:
finished runs and rows are kept.

A dataset is ``NAME`` or ``NAME:KEY=VALUE,...`` (dataset options; ``views`` takes ``+``-separated
names here): ``mfeat:views=fou+mor``.

    python benchmarks/dms_robustness.py --datasets mfeat:views=fou+mor avdigits \
        --seeds 0 1 2 --epochs mfeat=30 avdigits=30 --out /tmp/dms_exp
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import statistics
from pathlib import Path

import torch

from robustfusion.atomic import write_text
from robustfusion.data import DatasetInfo
from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import load_run, train

METHODS: dict[str, tuple[str, dict]] = {
    "static": ("static", {}),
    "dms-rule": ("dms", {"dms": {"scheduler": "rule"}}),  # the defaults
    "dms-learned": ("dms", {"dms": {"scheduler": "learned"}}),
    # the uniform twin: the same model and training, uniform weights
    "dms-uniform": ("dms", {"dms": {"weights": "uniform"}}),
    # options: the bounded confidence of the previous version, the agreement consistency
    "dms-normalised": ("dms", {"dms": {"confidence": "normalised"}}),
    "dms-cosine": ("dms", {"dms": {"consistency": "cosine"}}),  # the paper's consistency
    "dms-agreement": ("dms", {"dms": {"consistency": "agreement"}}),
    # extension: the learned scheduler trained with noise on one random modality (std U(0, 4))
    "dms-learned-noise": ("dms", {"dms": {"scheduler": "learned", "train_noise": 4.0}}),
}
COLUMNS = [
    "dataset",
    "method",
    "seed",
    "weights_mode",
    "target",
    "severity",
    "accuracy",
    "macro_f1",
    "ece",
]
COLUMNS_WEIGHTS = "weights"


def dataset_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME`` or ``NAME:KEY=VALUE,...`` -> ``(name, options)`` (``+`` joins list values)."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = value.replace("+", ",")
    return name, options


def standardised(info: DatasetInfo) -> DatasetInfo:
    """``info`` with image intensity scales off: Gaussian severity = std in standardised units."""
    return dataclasses.replace(
        info,
        modalities=tuple(dataclasses.replace(m, intensity_scale=None) for m in info.modalities),
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, COLUMNS_WEIGHTS])
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def summary(rows: list[dict[str, str]]) -> str:
    """Markdown: mean ± std over seeds of accuracy per (dataset, target, severity) and method."""
    lines = []
    datasets = sorted({r["dataset"] for r in rows})
    for dataset in datasets:
        every = [r for r in rows if r["dataset"] == dataset]
        sub = [r for r in every if r.get("weights_mode", "learned") == "learned"]
        methods = [m for m in METHODS if any(r["method"] == m for r in sub)]
        seeds = sorted({r["seed"] for r in sub})
        lines += [
            f"### {dataset} (test accuracy %, mean ± std over seeds {', '.join(seeds)})",
            "",
            "| target | noise std | " + " | ".join(methods) + " |",
            "|---|---|" + "---|" * len(methods),
        ]
        keys = []
        for r in sub:
            key = (r["target"], float(r["severity"]))
            if key not in keys:
                keys.append(key)
        for target, severity in keys:
            cells = []
            for method in methods:
                values = [
                    100 * float(r["accuracy"])
                    for r in sub
                    if r["method"] == method
                    and r["target"] == target
                    and float(r["severity"]) == severity
                ]
                if not values:
                    cells.append("")
                    continue
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f} (n={len(values)})")
            lines.append(f"| {target} | {severity:g} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _weight_table(sub, methods)
        lines += _swap_table(every, methods)
    return "\n".join(lines)


def _swap_table(rows: list[dict[str, str]], methods: list[str]) -> list[str]:
    """Accuracy with the learned, uniform and oracle weights of the same checkpoints."""
    modes = ["learned", "uniform", "oracle"]
    swapped = [
        m for m in methods if any(r["method"] == m and r["weights_mode"] != "learned" for r in rows)
    ]
    if not swapped:
        return []
    lines = [
        "Swapped weights (accuracy %, mean over seeds; learned / uniform / oracle):",
        "",
        "| target | noise std | " + " | ".join(swapped) + " |",
        "|---|---|" + "---|" * len(swapped),
    ]
    keys = []
    for r in rows:
        if r["weights_mode"] != "learned" and (r["target"], r["severity"]) not in keys:
            keys.append((r["target"], r["severity"]))
    for target, severity in keys:
        cells = []
        for method in swapped:
            parts = []
            for mode in modes:
                values = [
                    100 * float(r["accuracy"])
                    for r in rows
                    if r["method"] == method
                    and r["weights_mode"] == mode
                    and r["target"] == target
                    and r["severity"] == severity
                ]
                parts.append(f"{statistics.mean(values):.1f}" if values else "-")
            cells.append(" / ".join(parts))
        lines.append(f"| {target} | {float(severity):g} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _weight_table(sub: list[dict[str, str]], methods: list[str]) -> list[str]:
    """Mean weight of the corrupted modality (single-modality targets), mean over seeds."""
    modalities = [item.split("=")[0] for item in sub[0]["weights"].split()]
    keys = []
    for r in sub:
        if r["target"] in modalities and (r["target"], r["severity"]) not in keys:
            keys.append((r["target"], r["severity"]))
    lines = [
        "Mean weight of the corrupted modality (clean: its weight without noise):",
        "",
        "| target | noise std | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for target, severity in [(m, "0.0") for m in modalities] + keys:
        cells = []
        for method in methods:
            chosen = "clean" if severity == "0.0" else target
            values = [
                float(dict(item.split("=") for item in r["weights"].split())[target])
                for r in sub
                if r["method"] == method and r["target"] == chosen and r["severity"] == severity
            ]
            cells.append(f"{statistics.mean(values):.3f}" if values else "")
        lines.append(f"| {target} | {float(severity):g} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mfeat", "avdigits"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", nargs="+", default=["mfeat=30", "avdigits=30"])
    parser.add_argument("--severities", nargs="+", type=float, default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument(
        "--weights",
        nargs="+",
        default=["learned", "uniform", "oracle"],
        choices=["learned", "uniform", "oracle"],
        help="weight modes to evaluate methods with per-sample weights in",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary-only", action="store_true", help="rewrite summary.md only")
    args = parser.parse_args()
    if args.summary_only:
        write_text(args.out / "summary.md", summary(read_rows(args.out / "results.csv")))
        return
    torch.set_num_threads(1)
    epochs = {k: int(v) for k, v in (item.split("=") for item in args.epochs)}
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.csv"
    rows = read_rows(results)
    done = {
        (r["dataset"], r["method"], r["seed"], r["weights_mode"], r["target"], r["severity"])
        for r in rows
    }
    for spec in args.datasets:
        dataset, options = dataset_spec(spec)
        for seed in args.seeds:
            for label in args.methods:
                method, method_options = METHODS[label]
                run_dir = args.out / "runs" / spec.replace(":", "_") / label / f"seed{seed}"
                if not (run_dir / "metrics.json").is_file():
                    config = TrainConfig(
                        dataset=dataset,
                        dataset_options=options,
                        method=method,
                        method_options=method_options,
                        epochs=epochs.get(dataset, 30),
                        seed=seed,
                        out=str(run_dir),
                    )
                    train(config, resume=True, progress=False)
                model, splits, _ = load_run(run_dir)
                info = standardised(splits.info)
                dynamic = getattr(model.method, "has_dynamic_weights", False)
                modes = args.weights if dynamic else ["learned"]
                targets = ["all", "each", *info.modality_names]
                for mode in modes:
                    for target in targets:
                        for severity in args.severities:
                            if severity == 0 and target != "all":
                                continue  # one clean row per run
                            if mode == "oracle" and (severity == 0 or target == "all"):
                                continue  # nothing (or everything) corrupted: uniform
                            row_target = target if severity > 0 else "clean"
                            key = (spec, label, str(seed), mode, row_target, str(severity))
                            if key in done:
                                continue
                            metrics = evaluate_model(
                                model,
                                splits.test,
                                info,
                                corruption="gaussian" if severity > 0 else None,
                                severity=severity,
                                target=target,
                                seed=0,
                                weights=mode,
                            )
                            weights = " ".join(
                                f"{m}={w:.3f}" for m, w in metrics["mean_weight"].items()
                            )
                            rows.append(
                                {
                                    "dataset": spec,
                                    "method": label,
                                    "seed": seed,
                                    "weights_mode": mode,
                                    "target": row_target,
                                    "severity": severity,
                                    "accuracy": f"{metrics['accuracy']:.4f}",
                                    "macro_f1": f"{metrics['macro_f1']:.4f}",
                                    "ece": f"{metrics['ece']:.4f}",
                                    COLUMNS_WEIGHTS: weights,
                                }
                            )
                            done.add(key)
                write_rows(results, rows)
                write_text(args.out / "summary.md", summary(read_rows(results)))
                print(f"done {spec} {label} seed {seed}", flush=True)


if __name__ == "__main__":
    main()
