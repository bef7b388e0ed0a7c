"""Issue 4 experiments: missing-modality PCR with and without MWAM, and the "learns faster" check.

``pcr``: trains every (dataset, method, seed) with our trainer (resumable: finished runs are kept),
evaluates each on the clean test split and on every non-empty strict subset of absent modalities
(at most 20 seeded subsets: ``evaluation.grids.missing_subsets``), and writes ``pcr.csv`` (one row
per run and subset) and ``pcr.md`` (PCR = (A_full - A_missing) / A_full, averaged over subsets,
then mean and std over seeds).

``faster``: trains image-only and audio-only unimodal models on avdigits and reads their
validation accuracy after each epoch, beside the mean FRM ratio T per modality of the MWAM runs.

    python benchmarks/exp_mwam.py pcr --out /tmp/mwam_exp --seeds 0 1 2
    python benchmarks/exp_mwam.py faster --out /tmp/mwam_exp
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from robustfusion.atomic import write_text
from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.evaluation.frm_analysis import epoch_means, read_frm_log
from robustfusion.evaluation.grids import TransformedDataset, missing_subsets, remove_modalities
from robustfusion.training.config import TrainConfig
from robustfusion.training.run import load_run, train

EPOCHS = {"avdigits": 15, "mfeat": 30}
METHODS = ("static", "mwam", "modality_dropout", "mwam+modality_dropout")
#: Named variants: (method, method_options). ``mwam_k1`` fixes K = 1 (alpha=1, beta=0): the
#: auxiliary unimodal losses without any FRM guidance, the control that separates the two.
#: ``mwam_grad`` is the gradient mode alone (no auxiliary heads); ``mwam_every4`` computes FRM
#: every 4 steps; ``*_released`` use the authors' released setting (``preset=released``: gradient
#: mode, lam=10, gamma=1) and, with ``static_released``, its training recipe (SGD lr 1e-3,
#: momentum 0.9, weight decay 5e-4: ``MWAM.training_defaults``).
VARIANTS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "mwam_k1": ("mwam", {"mwam": {"alpha": 1.0, "beta": 0.0}}),
    "mwam_loss": ("mwam", {"mwam": {"mode": "loss"}}),
    "mwam_grad": ("mwam", {"mwam": {"mode": "gradient"}}),
    "mwam_every4": ("mwam", {"mwam": {"frm_every": 4}}),
    "mwam_sgd": ("mwam", {}),
    "mwam_grad_sgd": ("mwam", {"mwam": {"mode": "gradient"}}),
    "mwam_k1_sgd": ("mwam", {"mwam": {"alpha": 1.0, "beta": 0.0}}),
    "static_sgd": ("static", {}),
    "mwam_released": ("mwam", {"mwam": {"preset": "released"}}),
    "static_released": ("static", {}),
}
#: Training settings of the ``*_sgd`` variants (the SGD rows of notes/issue-4.md).
SGD = {"optimizer": "sgd", "lr": 0.05}


def _run(out: Path, dataset: str, method: str, seed: int, epochs: int, **extra: Any) -> Path:
    run_dir = out / "runs" / dataset / method.replace("+", "_plus_") / f"s{seed}"
    if not (run_dir / "metrics.json").is_file():
        name, options = VARIANTS.get(method, (method, {}))
        if method.endswith("_sgd"):
            extra = {**SGD, **extra}
        elif method.endswith("_released"):
            from robustfusion.methods.mwam import MWAM

            extra = {**MWAM.training_defaults({"preset": "released"}), **extra}
        config = TrainConfig(
            dataset=dataset,
            method=name,
            method_options=options,
            epochs=epochs,
            seed=seed,
            out=str(run_dir),
            **extra,
        )
        train(config, resume=True, progress=False)
    return run_dir


def _dataset_options(pairs: list[str]) -> dict[str, Any]:
    """``["views=pix,mor"]`` -> ``{"views": "pix,mor"}`` (values parsed as YAML scalars)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--dataset-option needs KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def pcr(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for method in args.methods:
            for seed in args.seeds:
                run_dir = _run(
                    args.out,
                    dataset,
                    method,
                    seed,
                    args.epochs or EPOCHS[dataset],
                    dataset_options=_dataset_options(args.dataset_option),
                )
                model, splits, _ = load_run(run_dir)
                info = splits.info
                full = evaluate_model(model, splits.test, info, seed=0)["accuracy"]
                for subset in missing_subsets(info.modality_names, 20, seed=0):
                    data = TransformedDataset(
                        splits.test, lambda b, s=subset, i=info: remove_modalities(b, i, s, 0)
                    )
                    accuracy = evaluate_model(model, data, info, seed=0)["accuracy"]
                    rows.append(
                        {
                            "dataset": dataset,
                            "method": method,
                            "seed": seed,
                            "absent": "+".join(subset),
                            "acc_full": full,
                            "acc_missing": accuracy,
                            "pcr": (full - accuracy) / full,
                        }
                    )
                print(dataset, method, seed, f"full {full:.4f}", flush=True)
    fields = list(rows[0])
    lines = [",".join(fields)] + [",".join(str(r[f]) for f in fields) for r in rows]
    write_text(args.out / "pcr.csv", "\n".join(lines) + "\n")
    write_text(args.out / "pcr.md", _pcr_table(rows))
    print(_pcr_table(rows))


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def _pcr_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | method | seeds | acc full (%) | acc missing, mean over subsets (%) | PCR (%) |",
        "|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["dataset"], r["method"]) for r in rows)
    for dataset, method in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        seeds = sorted({r["seed"] for r in mine})
        full = [next(r["acc_full"] for r in mine if r["seed"] == s) for s in seeds]
        missing = [statistics.mean(r["acc_missing"] for r in mine if r["seed"] == s) for s in seeds]
        rates = [statistics.mean(r["pcr"] for r in mine if r["seed"] == s) for s in seeds]
        lines.append(
            f"| {dataset} | {method} | {len(seeds)} | {_mean_std(full)} | {_mean_std(missing)} | "
            f"{_mean_std(rates)} |"
        )
    return "\n".join(lines) + "\n"


def _val_curve(run_dir: Path) -> list[float]:
    """Validation accuracy after each epoch, from the run's Lightning CSV log."""
    with (run_dir / "logs" / "metrics.csv").open(newline="") as handle:
        values = [float(r["val_acc"]) for r in csv.DictReader(handle) if r.get("val_acc")]
    return values


def faster(args: argparse.Namespace) -> None:
    result: dict[str, Any] = {"unimodal_val_accuracy": {}, "mwam_T": {}, "mwam_K": {}}
    for modality in ("image", "audio"):
        curves = []
        for seed in args.seeds:
            run_dir = _unimodal(args.out, modality, seed, args.epochs or 3)
            curves.append(_val_curve(run_dir))
        result["unimodal_val_accuracy"][modality] = [
            statistics.mean(c[e] for c in curves) for e in range(min(map(len, curves)))
        ]
    for method in ("mwam", "mwam+modality_dropout"):
        per_seed = []
        for seed in args.seeds:
            run_dir = args.out / "runs" / "avdigits" / method.replace("+", "_plus_") / f"s{seed}"
            if (run_dir / "logs" / "metrics.csv").is_file():
                per_seed.append(epoch_means(read_frm_log(run_dir)))
        if not per_seed:
            continue
        epochs = sorted(set.intersection(*(set(p) for p in per_seed)))
        for quantity, key in (("T", "mwam_T"), ("K", "mwam_K")):
            result[key][method] = {
                m: [statistics.mean(p[e][quantity][m] for p in per_seed) for e in epochs]
                for m in ("image", "audio")
            }
    write_text(args.out / "faster.json", json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _unimodal(out: Path, modality: str, seed: int, epochs: int) -> Path:
    run_dir = out / "runs" / "avdigits" / f"unimodal_{modality}" / f"s{seed}"
    if not (run_dir / "metrics.json").is_file():
        config = TrainConfig(
            dataset="avdigits",
            method="unimodal",
            method_options={"unimodal": {"modality": modality}},
            epochs=epochs,
            seed=seed,
            out=str(run_dir),
        )
        train(config, resume=True, progress=False)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pcr", "faster"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--epochs", type=int, default=None, help="override the per-dataset epochs")
        p.add_argument("--datasets", nargs="+", default=["avdigits", "mfeat"])
        p.add_argument(
            "--dataset-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="dataset option for every run, e.g. views=pix,mor (mfeat); repeatable",
        )
        p.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    {"pcr": pcr, "faster": faster}[args.command](args)


if __name__ == "__main__":
    main()
