"""Inference cost of DMS against static fusion, for each MC-dropout scope, in one process.

Every model runs on the same test batches, interleaved, and the medians of ``--repeats`` timed
sweeps are compared with static fusion measured in the same run:

* ``static``: the static baseline (default fusion);
* ``dms-<scope>``: DMS with ``mc_scope=<scope>`` (T MC passes, batched);
* ``loop``: the naive reading of MC dropout over the head: T full forward passes (encoders
  included) in a Python loop, then DMS's signals and fusion.

    python benchmarks/bench_dms.py --dataset avdigits --T 10
    python benchmarks/bench_dms.py --dataset mfeat --T 10 --out bench.json
    python benchmarks/bench_dms.py --dataset mfeat --dataset-option views=fou,mor

The ratio of matrix-product FLOPs (``flops.py``) is printed beside each model's time.

Targets (issue 12): dms (default scope) <= 4x static on mfeat and <= 1.2x on avdigits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from flops import inference_flops
from torch import Tensor

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import collate, load_dataset
from robustfusion.methods.dms import DMS, MC_SCOPES
from robustfusion.model import MultimodalModel
from robustfusion.modules.dms_signals import (
    CONFIDENCES,
    mc_dropout_uncertainty,
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
    logits = torch.stack([method.heads[m](features[m])[1] for m in method.modalities], 1)
    passes: list[list[Tensor]] = [[] for _ in method.modalities]
    for _ in range(samples):
        features = model.encode(batch.inputs)
        for i, m in enumerate(method.modalities):
            passes[i].append(method.heads[m](features[m], active=True)[1])
    confidence = CONFIDENCES[method.confidence_kind](logits)
    uncertainty = torch.stack([mc_dropout_uncertainty(torch.stack(p)) for p in passes], 1)
    weights = method.scheduler(confidence, uncertainty, semantic_consistency(z, mask), mask)
    return method.classifier((weights.unsqueeze(-1) * z).sum(1))


def _time(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _options(values: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--T", type=int, default=10, help="MC-dropout samples")
    parser.add_argument("--scopes", nargs="+", default=list(MC_SCOPES), choices=MC_SCOPES)
    parser.add_argument("--no-loop", action="store_true", help="skip the naive loop")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, help="use only the first N test samples")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    keep_freed_memory()  # as the command line runs (robustfusion/allocator.py)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dataset_options = _options(args.dataset_option)
    splits = load_dataset(args.dataset, seed=0, **dataset_options)
    device = torch.device(args.device)
    config = TrainConfig(dataset=args.dataset, dataset_options=dataset_options)
    models: dict[str, MultimodalModel] = {"static": build_model(config, splits.info)}
    config.method = "dms"
    for scope in args.scopes:
        config.method_options = {"dms": {"T": args.T, "mc_scope": scope}}
        built = build_model(config, splits.info)
        models[f"dms-{scope}"] = built
    for model in models.values():
        model.to(device).eval()
    data = splits.test
    size = len(data) if args.limit is None else min(args.limit, len(data))
    batches = [
        collate(data.__getitems__(list(range(i, min(i + args.batch_size, size))))).to(device)
        for i in range(0, size, args.batch_size)
    ]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def sweep(run: Callable[[Batch], object]) -> Callable[[], None]:
        def go() -> None:
            with torch.no_grad():
                for batch in batches:
                    run(batch)
            sync()

        return go

    runs = {name: sweep(model) for name, model in models.items()}
    if not args.no_loop and "dms-head" in models:
        head = models["dms-head"]
        runs["loop"] = sweep(lambda b: loop_forward(head, b, args.T))
    for go in runs.values():  # warm-up
        go()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, go in runs.items():
            times[name].append(_time(go))
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: median[name] / median["static"] for name in runs}
    flops = {name: inference_flops(model, batches[0]) for name, model in models.items()}
    flop_ratios = {name: flops[name] / flops["static"] for name in models}
    result = {
        "dataset": args.dataset,
        "dataset_options": dataset_options,
        "samples": size,
        "batch_size": args.batch_size,
        "T": args.T,
        "threads": args.threads,
        "device": str(device),
        "seconds": median,
        "over_static": ratios,
        "matmul_flop_ratio_over_static": flop_ratios,
    }
    for name in runs:
        print(
            f"{name:>16}: {1000 * median[name]:8.1f} ms per sweep of {size} samples"
            f"  ({ratios[name]:.2f}x static"
            + (f"; matrix-product FLOPs {flop_ratios[name]:.2f}x)" if name in flop_ratios else ")")
        )
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
