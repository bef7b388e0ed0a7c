"""How DMS's signals respond to noise for each MC-dropout scope, on the same trained checkpoint.

Loads a finished DMS run, rebuilds it with ``mc_scope`` = head, encoder_top and encoder (the same
parameters: the scope changes only where the MC passes run), and reports on the test split,
with Gaussian noise on one modality at a time (std in standardised units): the mean uncertainty
``u`` and confidence ``c`` of the noisy and of the clean modalities, the noisy modality's mean
weight, and the accuracy.

    python benchmarks/dms_scopes.py /tmp/dms_exp/runs/avdigits/dms-rule/seed0 --severities 0 1 2 4
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from robustfusion.data import DatasetInfo, collate
from robustfusion.data.corruptions import corrupt
from robustfusion.methods.dms import MC_SCOPES
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model
from robustfusion.training.run import load_run
from robustfusion.training.seeding import seed_all


def standardised(info: DatasetInfo) -> DatasetInfo:
    """``info`` with image intensity scales off: Gaussian severity = std in standardised units."""
    return dataclasses.replace(
        info,
        modalities=tuple(dataclasses.replace(m, intensity_scale=None) for m in info.modalities),
    )


@torch.no_grad()
def measure(model: MultimodalModel, dataset, info, target: str, severity: float) -> dict:
    seed_all(0)
    sums: dict[str, Tensor] = {}
    correct, count = 0, 0
    for batch in DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=collate):
        if severity > 0:
            batch = corrupt(batch, info, "gaussian", severity, target=target, seed=0)
        out = model(batch)
        for name in ("uncertainty", "confidence"):
            sums[name] = sums.get(name, 0) + out.extras[name].sum(0)
        sums["weights"] = sums.get("weights", 0) + out.weights.sum(0)
        correct += int((out.logits.argmax(1) == batch.target).sum())
        count += batch.batch_size
    return {name: (value / count).tolist() for name, value in sums.items()} | {
        "accuracy": correct / count
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished DMS run folder")
    parser.add_argument("--severities", nargs="+", type=float, default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--scopes", nargs="+", default=list(MC_SCOPES), choices=MC_SCOPES)
    parser.add_argument("--limit", type=int, help="use only the first N test samples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trained, splits, config = load_run(args.run)
    info = standardised(splits.info)
    dataset = splits.test
    if args.limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    names = info.modality_names
    print("scope        target  std |  u(noisy)  u(clean) |  c(noisy)  c(clean) | w(noisy) | acc")
    for scope in args.scopes:
        scoped = copy.deepcopy(config)
        options = dict(scoped.method_options.get("dms", {}))
        scoped.method_options = {**scoped.method_options, "dms": {**options, "mc_scope": scope}}
        built = build_model(scoped, splits.info)
        built.load_state_dict(trained.state_dict())
        model = built.eval()
        for target in names:
            for severity in args.severities:
                r = measure(model, dataset, info, target, severity)
                i = names.index(target)
                others = [j for j in range(len(names)) if j != i]

                def other(values: list[float], others: list[int] = others) -> float:
                    return sum(values[j] for j in others) / len(others)

                print(
                    f"{scope:<12} {target:<6} {severity:4g} | {r['uncertainty'][i]:8.4f}  "
                    f"{other(r['uncertainty']):8.4f} | {r['confidence'][i]:8.3f}  "
                    f"{other(r['confidence']):8.3f} | {r['weights'][i]:8.3f} | "
                    f"{100 * r['accuracy']:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
