"""Inference cost of DMS: static vs DMS (T MC samples in one batched pass) vs a loop of T passes.

The loop is the naive Monte-Carlo dropout: T full forward passes (encoders included) with dropout
active, then the same signals, scheduler and fusion. All three run on the same test batches of a
dataset, interleaved, in one process; the medians of ``--repeats`` timed sweeps are compared.

    python benchmarks/bench_dms.py --dataset avdigits --T 10
    python benchmarks/bench_dms.py --dataset mfeat --T 10 --out bench.json

Targets (issue 6): DMS <= 1.5x static, and the loop >= 4x slower than DMS.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from robustfusion.atomic import write_json
from robustfusion.data import collate, load_dataset
from robustfusion.methods.dms import DMS
from robustfusion.model import MultimodalModel
from robustfusion.modules.dms_signals import (
    mc_dropout_uncertainty,
    normalised_entropy_confidence,
    semantic_consistency,
)
from robustfusion.training.build import build_model
from robustfusion.training.config import TrainConfig
from robustfusion.types import Batch


@torch.no_grad()
def loop_forward(model: MultimodalModel, batch: Batch, samples: int) -> Tensor:
    """Naive MC dropout: T full passes (encoders + heads, dropout on), then DMS's fusion."""
    method = model.method
    assert isinstance(method, DMS)
    mask = batch.present_matrix()
    features = model.encode(batch.inputs)
    z = torch.stack([method.heads[m](features[m])[0] for m in method.modalities], 1)
    logits = [method.heads[m](features[m])[1] for m in method.modalities]
    passes: list[list[Tensor]] = [[] for _ in method.modalities]
    for _ in range(samples):
        features = model.encode(batch.inputs)
        for i, m in enumerate(method.modalities):
            passes[i].append(method.heads[m](features[m], active=True)[1])
    confidence = torch.stack([normalised_entropy_confidence(x) for x in logits], 1)
    uncertainty = torch.stack([mc_dropout_uncertainty(torch.stack(p)) for p in passes], 1)
    weights = method.scheduler(confidence, uncertainty, semantic_consistency(z, mask), mask)
    return method.classifier((weights.unsqueeze(-1) * z).sum(1))


def _time(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--T", type=int, default=10, help="MC-dropout samples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    splits = load_dataset(args.dataset, seed=0)
    device = torch.device(args.device)
    config = TrainConfig(dataset=args.dataset)
    static = build_model(config, splits.info).to(device).eval()
    config.method, config.method_options = "dms", {"dms": {"T": args.T}}
    dms = build_model(config, splits.info).to(device).eval()
    data = splits.test
    batches = [
        collate(data.__getitems__(list(range(i, min(i + args.batch_size, len(data))))))
        for i in range(0, len(data), args.batch_size)
    ]
    batches = [b.to(device) for b in batches]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def sweep(run: Callable[[Batch], object]) -> Callable[[], None]:
        def go() -> None:
            with torch.no_grad():
                for batch in batches:
                    run(batch)
            sync()

        return go

    runs = {
        "static": sweep(static),
        "dms": sweep(dms),
        "loop": sweep(lambda b: loop_forward(dms, b, args.T)),
    }
    for go in runs.values():  # warm-up
        go()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, go in runs.items():
            times[name].append(_time(go))
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "dataset": args.dataset,
        "samples": len(data),
        "batch_size": args.batch_size,
        "T": args.T,
        "threads": args.threads,
        "device": str(device),
        "seconds": median,
        "dms_over_static": median["dms"] / median["static"],
        "loop_over_dms": median["loop"] / median["dms"],
    }
    for name in runs:
        print(f"{name:>6}: {1000 * median[name]:8.1f} ms per sweep of {len(data)} samples")
    print(f"dms / static = {result['dms_over_static']:.2f}  (target <= 1.5)")
    print(f"loop / dms   = {result['loop_over_dms']:.2f}  (target >= 4)")
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
