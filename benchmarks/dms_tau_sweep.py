"""Inference-time temperature sweep of trained DMS (rule) runs under Gaussian noise on one target.

The rule scheduler has no parameters, so its temperature can be changed after training: a lower
``tau`` sharpens the same preference. Severities in standardised units (as dms_robustness.py).

    python benchmarks/dms_tau_sweep.py /tmp/dms_exp/runs/avdigits/dms-rule/seed* --target image
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from dms_robustness import standardised  # noqa: I001 - a sibling script

from robustfusion.evaluation.evaluate import evaluate_model
from robustfusion.training.run import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--taus", nargs="+", type=float, default=[1.0, 0.5, 0.25, 0.1])
    parser.add_argument("--severities", nargs="+", type=float, default=[0.0, 1.0, 2.0, 4.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    table: dict[tuple[float, float], list[tuple[float, float]]] = {}
    for run in args.runs:
        model, splits, _ = load_run(run)
        info = standardised(splits.info)
        column = info.modality_names.index(args.target)
        for tau in args.taus:
            model.method.scheduler.tau = tau
            for severity in args.severities:
                metrics = evaluate_model(
                    model,
                    splits.test,
                    info,
                    corruption="gaussian" if severity > 0 else None,
                    severity=severity,
                    target=args.target,
                )
                weight = list(metrics["mean_weight"].values())[column]
                table.setdefault((tau, severity), []).append((metrics["accuracy"], weight))
    print(f"| tau | noise std on {args.target} | accuracy % | weight of {args.target} |")
    print("|---|---|---|---|")
    for (tau, severity), values in table.items():
        accuracy = statistics.mean(100 * a for a, _ in values)
        weight = statistics.mean(w for _, w in values)
        print(f"| {tau:g} | {severity:g} | {accuracy:.1f} | {weight:.3f} |")


if __name__ == "__main__":
    main()
