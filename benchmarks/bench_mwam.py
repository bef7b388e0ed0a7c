"""Training time of MWAM against the method it wraps, measured in the same process
(issue 12: <= 1.15x static on mfeat and avdigits).

Every model is built by the trainer's own builder on the same data, seeds and batches, and
trained in a plain PyTorch loop with every method hook called where the trainer calls it
(``prepare_batch``, ``losses``, ``after_backward``, ``logged_values``). One MWAM model is timed per
``--frm-every`` value. Epochs alternate between the models (static, mwam k=1, mwam k=4, static, ...)
so that load on a shared machine hits all alike; the figures are the ratios of the median epoch
times to the inner method's. The first epoch of each is a warm-up and not timed. The ratio of
matrix-product FLOPs per step (``flops.py``) is printed beside them.

    python benchmarks/bench_mwam.py --dataset mfeat --epochs 10 --frm-every 1 4
    python benchmarks/bench_mwam.py --dataset avdigits --epochs 4 --frm-every 1 4
    python benchmarks/bench_mwam.py --dataset mfeat --preset released --optimizer sgd
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from flops import training_step_flops

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import load_dataset
from robustfusion.data.base import TensorMultimodalDataset
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model
from robustfusion.training.config import TrainConfig
from robustfusion.training.optim import build_optimizer


def _epoch(
    model: MultimodalModel,
    optimizer: torch.optim.Optimizer,
    dataset: TensorMultimodalDataset,
    batch_size: int,
    seed: int,
) -> float:
    """One training epoch; returns the CPU seconds this process spent on it.

    CPU time, not wall-clock time: on a shared machine a process is descheduled in ~10 ms slices
    that land on whichever method happens to be running, which swamps a 10% difference.
    """
    method = model.method
    model.train()
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    started = time.process_time()
    for start in range(0, n, batch_size):
        batch = dataset.__getitems__(order[start : start + batch_size].tolist())
        batch = method.prepare_batch(batch, True)
        output = model(batch)
        loss = torch.stack(list(method.losses(output, batch).values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model.encoders)
        optimizer.step()
        method.logged_values()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mfeat")
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per method")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--mode", default=None, choices=["hybrid", "loss", "gradient"], help="default: preset's"
    )
    parser.add_argument("--preset", default="paper", help="MWAM preset (paper, released, ...)")
    parser.add_argument(
        "--frm-every",
        type=int,
        nargs="+",
        default=[1],
        help="one MWAM model per value of frm_every (FRM every k steps)",
    )
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--inner", default="static", help="method MWAM wraps (and is compared to)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="do not flush denormal floats to zero (on x86 CPUs they make Adam steps erratic)",
    )
    parser.add_argument(
        "--foreach",
        action="store_true",
        help="multi-tensor optimiser steps instead of the trainer's (fused where torch has it)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    keep_freed_memory()  # as the command line runs (robustfusion/allocator.py)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)

    splits = load_dataset(args.dataset, seed=0)
    models: dict[str, MultimodalModel] = {}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    variants: dict[str, dict[str, Any]] = {args.inner: {}}
    for k in args.frm_every:
        options: dict[str, Any] = {"preset": args.preset, "frm_every": k}
        if args.mode is not None:
            options["mode"] = args.mode
        variants[f"mwam+{args.inner} frm_every={k}"] = options
    for label, options in variants.items():
        config = TrainConfig(
            dataset=args.dataset,
            method=f"mwam+{args.inner}" if options else args.inner,
            method_options={"mwam": options} if options else {},
            out="unused",
        )
        torch.manual_seed(0)
        models[label] = build_model(config, splits.info)
        params = models[label].parameters()
        if args.foreach:
            if args.optimizer == "sgd":
                optimizers[label] = torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True)
            else:
                optimizers[label] = torch.optim.Adam(params, lr=1e-3, foreach=True)
        else:  # the trainer's own optimiser (fused where torch has it)
            optimizers[label] = build_optimizer(
                params, dataclasses.replace(config, optimizer=args.optimizer, lr=1e-3)
            )
    probe = splits.train.__getitems__(list(range(args.batch_size)))
    flops = {label: training_step_flops(model, probe) for label, model in models.items()}
    times: dict[str, list[float]] = {label: [] for label in models}
    for epoch in range(args.epochs + 1):
        for label, model in models.items():
            seconds = _epoch(model, optimizers[label], splits.train, args.batch_size, seed=epoch)
            if epoch > 0:
                times[label].append(seconds)
    medians = {label: statistics.median(t) for label, t in times.items()}
    base = medians[args.inner]
    result = {
        "dataset": args.dataset,
        "preset": args.preset,
        "mode": args.mode or "preset default",
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "train_samples": len(splits.train),
        "epochs_timed": args.epochs,
        "clock": "process CPU time",
        "median_epoch_seconds": medians,
        "ratio_over_inner": {
            label: value / base for label, value in medians.items() if label != args.inner
        },
        "matmul_flop_ratio_over_inner": {
            label: value / flops[args.inner]
            for label, value in flops.items()
            if label != args.inner
        },
        "torch_threads": args.threads,
        "flush_denormal": not args.keep_denormals,
        "foreach": args.foreach,
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
