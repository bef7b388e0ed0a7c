"""UDML checks (issues 10/12): clean accuracy against static, robustness, weight swaps, unimodal.

Trains each (variant, seed) with the project trainer (model selection on validation; a method's
``training_defaults`` applied to every setting the variant does not give, as the CLI does), then
evaluates the selected model on the test split: clean, and Gaussian noise on each modality in
turn, with the learned weights and (for methods with dynamic weights) the uniform and oracle
swaps. Resumable: a trained run is not retrained, an evaluated one not re-evaluated.

    python scripts/udml_checks.py --dataset mfeat --dataset-option views=fou,mor \\
        --variants static udml udml-uniform --seeds 0 1 --epochs 30 --out runs/udml_checks
    python scripts/udml_checks.py --dataset avdigits --variants static udml udml-uniform \\
        --seeds 0 1 --epochs 30 --train-option feature_dim=64 hidden_dim=64 \\
        --out runs/udml_checks

Prints one table per dataset: accuracy (%) mean ± std over seeds per protocol, the mean weight
of the noised modality, and the unimodal accuracy of each modality on clean data.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.methods.base import WEIGHT_MODES
from robustfusion.registry import METHODS
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import METRICS_FILE, load_run, train

#: variant -> (method, method options, training settings).
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "static": ("static", {}, {}),
    "dms": ("dms", {}, {}),
    "udml": ("udml", {}, {}),
    "udml-uniform": ("udml", {"weights": "uniform"}, {}),
    "udml-paper": ("udml", {"preset": "paper"}, {}),
    "udml-paper-adam": ("udml", {"preset": "paper"}, {"optimizer": "adam"}),
    "udml-head-fusion": ("udml", {"head": "fusion"}, {}),
    "udml-decoupled": ("udml", {"coupling": "decoupled", "alpha_at": "neutral"}, {}),
    "udml-detach": ("udml", {"detach_uncertainty": True}, {}),
    "udml-per-epoch": ("udml", {"level_draw": "per_epoch"}, {}),
    "udml-ema0": ("udml", {"dependency_momentum": 0.0}, {}),
    "udml-gamma1": ("udml", {"gamma": 1.0}, {}),
    "udml-layer": ("udml", {"vector_norm": "layer"}, {}),
    "udml-mult": ("udml", {"fusion_form": "multiplicative"}, {}),
    "udml-spec1": ("udml", {"spectrogram_noise_scale": 1.0}, {}),
    "udml-spec05": ("udml", {"spectrogram_noise_scale": 0.5}, {}),
    "udml-spec025": ("udml", {"spectrogram_noise_scale": 0.25}, {}),
    "udml-spec01": ("udml", {"spectrogram_noise_scale": 0.1}, {}),
}

#: Gaussian severities per modality kind (0-255 units for images, stored units otherwise).
SEVERITIES = {"image": [50.0, 100.0, 150.0], "spectrogram": [1.0, 2.0], "vector": [1.0, 2.0, 4.0]}


def parse_pairs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def run_dir(args: argparse.Namespace, variant: str, seed: int) -> Path:
    tag = args.dataset + "".join(f"_{k}-{v}" for k, v in sorted(args.dataset_option.items()))
    return args.out / tag.replace(",", "+") / variant / f"seed{seed}"


def train_one(args: argparse.Namespace, variant: str, seed: int) -> Path:
    directory = run_dir(args, variant, seed)
    if (directory / METRICS_FILE).is_file():
        return directory
    method, options, settings = VARIANTS[variant]
    defaults = METHODS.get(method).training_defaults(options)
    config = TrainConfig(
        dataset=args.dataset,
        dataset_options=dict(args.dataset_option),
        method=method,
        method_options={method: options} if options else {},
        seed=seed,
        epochs=args.epochs,
        out=str(directory),
    ).with_overrides(**{**defaults, **args.train_option, **settings})
    started = time.perf_counter()
    metrics = train(config, resume=True, progress=False)
    print(
        f"trained {variant} seed {seed}: test {metrics['accuracy']:.4f} (best epoch "
        f"{metrics['best_epoch']}, {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return directory


def evaluate_one(directory: Path, variant: str, seed: int) -> list[dict[str, Any]]:
    model, splits, _ = load_run(directory)
    info = splits.info
    modes = WEIGHT_MODES if getattr(model.method, "has_dynamic_weights", False) else ("learned",)
    protocols: list[tuple[str, float]] = [("none", 0.0)]
    for modality in info.modalities:
        protocols += [(modality.name, s) for s in SEVERITIES.get(modality.kind, [1.0, 2.0])]
    rows = []
    for target, severity in protocols:
        for mode in modes:
            if target == "none" and mode == "oracle":
                continue
            metrics = evaluate_model(
                model,
                splits.test,
                info,
                corruption=None if target == "none" else "gaussian",
                severity=severity,
                target="all" if target == "none" else target,
                seed=0,
                weights=mode,
            )
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "target": target,
                    "severity": severity,
                    "weights": mode,
                    "accuracy": metrics["accuracy"],
                    "mean_weight": metrics["mean_weight"],
                    "unimodal_accuracy": metrics["unimodal_accuracy"],
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> str:
    acc: dict[tuple[str, str, float, str], list[float]] = defaultdict(list)
    weight: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    uni: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        acc[(r["variant"], r["target"], r["severity"], r["weights"])].append(r["accuracy"])
        if r["weights"] == "learned" and r["target"] != "none":
            weight[(r["variant"], r["target"], r["severity"])].append(r["mean_weight"][r["target"]])
        if r["target"] == "none" and r["weights"] == "learned":
            for m, a in r["unimodal_accuracy"].items():
                uni[(r["variant"], m)].append(a)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    protocols = list(dict.fromkeys((r["target"], r["severity"]) for r in rows))
    head = "| variant | weights | " + " | ".join(
        "clean" if t == "none" else f"{t} {s:g}" for t, s in protocols
    )
    lines = [head + " |", "|" + "---|" * (len(protocols) + 2)]
    for v in variants:
        for mode in WEIGHT_MODES:
            cells = []
            for t, s in protocols:
                values = acc.get((v, t, s, mode))
                cells.append(
                    f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if values else ""
                )
            if any(cells):
                n = len(acc.get((v, "none", 0.0, "learned"), []))
                lines.append(f"| {v} ({n}) | {mode} | " + " | ".join(cells) + " |")
        cells = [
            f"w {np.mean(weight[(v, t, s)]):.3f}" if (v, t, s) in weight else ""
            for t, s in protocols
        ]
        lines.append(f"| {v} | noised weight | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("unimodal accuracy (clean, learned weights):")
    for v in variants:
        parts = [
            f"{m} {100 * np.mean(a):.1f} ± {100 * np.std(a):.1f}"
            for (vv, m), a in uni.items()
            if vv == v
        ]
        lines.append(f"  {v}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--dataset-option", nargs="*", default=[])
    parser.add_argument("--variants", nargs="+", default=["static", "udml", "udml-uniform"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-option", nargs="*", default=[], help="TrainConfig KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("runs/udml_checks"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.dataset_option = parse_pairs(args.dataset_option)
    args.train_option = parse_pairs(args.train_option)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(1)

    results = run_dir(args, "x", 0).parent.parent / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if results.is_file():
        for line in results.read_text().splitlines():
            row = json.loads(line)
            done.add((row["variant"], row["seed"]))
    if not args.report_only:
        for seed in args.seeds:
            for variant in args.variants:
                directory = train_one(args, variant, seed)
                if (variant, seed) in done:
                    continue
                rows = evaluate_one(directory, variant, seed)
                with results.open("a") as handle:
                    handle.write("".join(json.dumps(row) + "\n" for row in rows))
                    handle.flush()
                    os.fsync(handle.fileno())
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows = [r for r in rows if r["variant"] in args.variants and r["seed"] in args.seeds]
    print(summarise(rows))


if __name__ == "__main__":
    main()
