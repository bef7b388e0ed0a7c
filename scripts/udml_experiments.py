"""Issue 5 experiments: static, pe, udml and its ablations, clean and under Gaussian noise.

The issue-5 protocol, kept for its tables (the issue-10 checks are ``scripts/udml_checks.py``).
Trains every (dataset, variant, seed) with the project trainer (model selection on validation),
then evaluates the selected model on the test split clean and with Gaussian noise on each modality
in turn (``evaluate_model(..., corruption="gaussian", target=<modality>)``). Resumable: a run whose
``metrics.json`` exists is not retrained, an evaluation already in ``results.jsonl`` is not redone.

    python scripts/udml_experiments.py --dataset avdigits --seeds 0 1 2 --out runs/udml
    python scripts/udml_experiments.py --dataset mfeat --seeds 0 1 2 --out runs/udml

Writes ``OUT/<dataset>/<variant>/seed<k>/`` (the runs) and ``OUT/<dataset>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import METRICS_FILE, load_run, train

#: variant label -> (method, udml options). The ablation rows of the paper.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "static": ("static", {}),
    "pe": ("pe", {}),
    "udml": ("udml", {}),
    "udml-estimator-only": ("udml", {"use_dependency": False}),
    "udml-alpha-only": ("udml", {"use_estimator": False}),
    "udml-no-probabilistic": ("udml", {"probabilistic": False}),
    # LayerNorm instead of BatchNorm in the vector heads (mfeat; no effect on maps).
    "udml-vector-layer": ("udml", {"vector_norm": "layer"}),
    # The uniform twin: UDML's training (noise injection, heads, losses) with uniform weights,
    # which separates what the weights do from what noise-augmented training does.
    "udml-uniform-weights": ("udml", {"weights": "uniform"}),
    # Issue 5's decoupled variant: separate unimodal heads, alpha at neutral weights (EMA).
    "udml-decoupled": (
        "udml",
        {
            "coupling": "decoupled",
            "alpha_at": "neutral",
            "dependency_momentum": 0.9,
            "head": "fusion",
            "detach_uncertainty": True,
        },
    ),
    # [ours] Each sample's own dependency instead of the global value.
    "udml-per-sample-alpha": ("udml", {"per_sample_dependency": True}),
}

#: Per dataset: training settings and the Gaussian severities per evaluated kind
#: (0-255 intensity units for images, standardised units otherwise).
SETTINGS: dict[str, dict[str, Any]] = {
    "avdigits": {
        "train": {
            "epochs": 12,
            "feature_dim": 64,
            "hidden_dim": 64,
            "encoder_options": {"cnn": {"width": 16}},
        },
        "severities": {"image": [25.0, 50.0, 100.0, 150.0], "spectrogram": [0.5, 1.0, 2.0, 4.0]},
    },
    "mfeat": {
        "train": {"epochs": 30},
        "severities": {"vector": [1.0, 2.0, 4.0]},
        # The QMF protocol too: every view noisy independently with probability 0.5.
        "each": [1.0, 2.0, 4.0],
    },
}


def run_dir(out: Path, dataset: str, variant: str, seed: int) -> Path:
    return out / dataset / variant / f"seed{seed}"


def train_one(out: Path, dataset: str, variant: str, seed: int, epochs: int | None = None) -> Path:
    directory = run_dir(out, dataset, variant, seed)
    if (directory / METRICS_FILE).is_file():
        return directory
    method, options = VARIANTS[variant]
    settings = dict(SETTINGS[dataset]["train"])
    if epochs is not None:
        settings["epochs"] = epochs
    config = TrainConfig(
        dataset=dataset,
        method=method,
        method_options={"udml": {**options, "seed": seed}} if method == "udml" else {},
        seed=seed,
        out=str(directory),
        **settings,
    )
    started = time.perf_counter()
    metrics = train(config, resume=True, progress=False)
    print(
        f"trained {dataset} {variant} seed {seed}: test acc {metrics['accuracy']:.4f} "
        f"(best epoch {metrics['best_epoch']}, {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return directory


def evaluate_one(directory: Path, dataset: str, variant: str, seed: int) -> list[dict[str, Any]]:
    model, splits, _ = load_run(directory)
    info = splits.info
    rows = []
    protocols: list[tuple[str, float]] = [("none", 0.0)]
    for modality in info.modalities:
        for severity in SETTINGS[dataset]["severities"][modality.kind]:
            protocols.append((modality.name, severity))
    for severity in SETTINGS[dataset].get("each", []):
        protocols.append(("each", severity))
    for target, severity in protocols:
        metrics = evaluate_model(
            model,
            splits.test,
            info,
            corruption=None if target == "none" else "gaussian",
            severity=severity,
            target="all" if target == "none" else target,
            seed=0,
        )
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "seed": seed,
                "target": target,
                "severity": severity,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "ece": metrics["ece"],
                "mean_weight": metrics["mean_weight"],
                "unimodal_accuracy": metrics["unimodal_accuracy"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:6], choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/udml"))
    parser.add_argument("--epochs", type=int, default=None, help="override the dataset's epochs")
    args = parser.parse_args()
    torch.set_num_threads(1)

    results = args.out / args.dataset / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if results.is_file():
        for line in results.read_text().splitlines():
            row = json.loads(line)
            done.add((row["variant"], row["seed"]))
    for seed in args.seeds:
        for variant in args.variants:
            directory = train_one(args.out, args.dataset, variant, seed, args.epochs)
            if (variant, seed) in done:
                continue
            rows = evaluate_one(directory, args.dataset, variant, seed)
            with results.open("a") as handle:  # one append per run: whole lines only
                handle.write("".join(json.dumps(row) + "\n" for row in rows))
                handle.flush()
                os.fsync(handle.fileno())


if __name__ == "__main__":
    main()
