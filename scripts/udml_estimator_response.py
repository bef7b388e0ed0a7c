"""Estimator response (issues 5, 10): mean predicted noise level vs injected level on test data.

For each trained udml run (and the pe run of the same dataset and seed), every test sample gets
noise level ``v`` (1..11) on one modality at a time, injected exactly as UDML injects it in
training (``UDML.inject``: std ``v^2`` in 0-255 units for images, ``v`` raw log-magnitude units
(or the calibrated fallback) for spectrograms, ``0.1 v`` for vectors, pure noise at 11, with noise
seeds never used in training). Reported per modality: UDML's mean ``sigma_hat`` and pe's mean
``sigma`` (mean over features of ``exp(0.5 logvar)``), and Spearman's rho of each against ``v``
over levels 1..10 (the requirement; pure noise at 11 is reported but not ranked).

    python scripts/udml_estimator_response.py --runs runs/udml --datasets avdigits mfeat \\
        --seeds 0 1 2 --json notes/udml_estimator_response.json \\
        --figure notes/udml_estimator_response.png
    # or any trained udml run folders (e.g. from scripts/udml_checks.py):
    python scripts/udml_estimator_response.py --run-dirs runs/udml_checks/mfeat_views-fou+mor/udml/seed0

``--runs`` reads the layout of ``scripts/udml_experiments.py`` (variants ``udml`` and ``pe``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from robustfusion.atomic import write_bytes
from robustfusion.data import collate
from robustfusion.methods.udml import UDML
from robustfusion.model import MultimodalModel
from robustfusion.training.run import load_run
from robustfusion.types import Batch

LEVELS = list(range(1, 12))
#: An epoch index training never reaches: the evaluation noise differs from the training noise.
EVAL_EPOCH = 1_000_000


def full_batch(dataset: Any) -> Batch:
    items = range(len(dataset))
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(list(items))
    return collate([dataset[i] for i in items])


@torch.no_grad()
def response(model: MultimodalModel, injector: UDML, batch: Batch, kind: str) -> dict[str, list]:
    """Mean uncertainty per injected level, per modality (``kind``: ``udml`` or ``pe``)."""
    model.eval()
    curves: dict[str, list[float]] = {}
    n = batch.batch_size
    for m in injector.modalities:
        curve = []
        for level in LEVELS:
            noisy = injector.inject(batch, {m: torch.full((n,), float(level))}, epoch=EVAL_EPOCH)
            out = model(noisy)
            if kind == "udml":
                value = out.extras[f"sigma_hat/{m}"]
            else:
                value = torch.exp(0.5 * out.extras[f"logvar/{m}"]).flatten(1).mean(dim=1)
            curve.append(float(value[noisy.present[m]].mean()))
        curves[m] = curve
    return curves


#: Levels ranked for the monotonicity requirement (1..10: pure noise at 11 is reported only).
RANKED = LEVELS[:10]


def rho(curve: list[float]) -> float:
    return float(spearmanr(RANKED, curve[: len(RANKED)]).statistic)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(d, m) for d, entry in summary.items() for m in entry["modalities"]]
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax, (dataset, m) in zip(axes.flat, panels, strict=False):
        entry = summary[dataset]["modalities"][m]
        for kind, colour, axis in (("udml", "tab:blue", ax), ("pe", "tab:orange", ax.twinx())):
            if kind not in entry:
                continue
            curves = np.array(entry[kind]["curves"])
            mean, std = curves.mean(axis=0), curves.std(axis=0)
            label = f"{kind} (rho {entry[kind]['rho_mean']:.2f})"
            axis.plot(LEVELS, mean, marker="o", ms=3, color=colour, label=label)
            axis.fill_between(LEVELS, mean - std, mean + std, color=colour, alpha=0.2)
            axis.tick_params(axis="y", labelcolor=colour)
            axis.legend(loc="upper left" if kind == "udml" else "lower right", fontsize=7)
        ax.set_title(f"{dataset}: {m}", fontsize=9)
        ax.set_xlabel("injected level v")
        ax.set_ylabel("udml sigma_hat (blue) / pe sigma (orange)", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/udml"))
    parser.add_argument("--datasets", nargs="+", default=["avdigits", "mfeat"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", default="udml", help="the udml variant to read")
    parser.add_argument("--json", type=Path, default=Path("notes/udml_estimator_response.json"))
    parser.add_argument("--figure", type=Path, default=Path("notes/udml_estimator_response.png"))
    parser.add_argument(
        "--run-dirs", type=Path, nargs="*", default=None, help="udml run folders (any layout)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.run_dirs:
        jobs = [(directory, None, None) for directory in args.run_dirs]
    else:
        jobs = [
            (args.runs / dataset / variant / f"seed{seed}", dataset, seed)
            for dataset in args.datasets
            for seed in args.seeds
            for variant in (args.variant, "pe")
        ]
    summary: dict[str, Any] = {}
    for directory, _, _ in jobs:
        if not (directory / "model.pt").is_file():
            print(f"skipping {directory}: not trained")
            continue
        model, splits, config = load_run(directory)
        is_udml = isinstance(model.method, UDML)
        kind = "udml" if is_udml else "pe"
        injector = model.method if is_udml else UDML(model.method.spec, seed=config.seed)
        curves = response(model, injector, full_batch(splits.test), kind)
        name = str(config.dataset or config.data)
        if config.modalities:
            name += f" ({','.join(config.modalities)})"
        modalities = summary.setdefault(name, {"levels": LEVELS, "modalities": {}})
        for m, curve in curves.items():
            values = " ".join(f"{c:.3g}" for c in curve)
            print(f"{directory} {kind} {m}: rho(1..10) {rho(curve):.3f}  v=1..11: {values}")
            entry = (
                modalities["modalities"]
                .setdefault(m, {})
                .setdefault(kind, {"curves": [], "rho": [], "seeds": [], "runs": []})
            )
            entry["curves"].append(curve)
            entry["rho"].append(rho(curve))
            entry["seeds"].append(config.seed)
            entry["runs"].append(str(directory))
    for dataset, data in summary.items():
        for m, entry in data["modalities"].items():
            for stats in entry.values():
                stats["rho_mean"] = float(np.mean(stats["rho"]))
                stats["rho_std"] = float(np.std(stats["rho"]))
                stats["rho_min"] = float(np.min(stats["rho"]))
                stats["mean_curve"] = np.mean(stats["curves"], axis=0).tolist()
            line = ", ".join(
                f"{k} rho {s['rho_mean']:.3f} +- {s['rho_std']:.3f} (min {s['rho_min']:.3f}, "
                f"{len(s['rho'])} runs)"
                for k, s in entry.items()
            )
            print(f"{dataset} {m}: {line}")
    write_bytes(args.json, (json.dumps(summary, indent=1) + "\n").encode())
    plot(summary, args.figure)


if __name__ == "__main__":
    main()
