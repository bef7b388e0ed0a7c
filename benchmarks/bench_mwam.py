"""Training time of MWAM against static fusion, measured in the same process (issue 4: <= 1.10x).

Both models are built by the trainer's own builder on the same data, seeds and batches, and
trained in a plain PyTorch loop with every method hook called where the trainer calls it
(``prepare_batch``, ``losses``, ``after_backward``, ``logged_values``). Epochs alternate between the
methods (static, mwam, static, mwam, ...) so that load on a shared machine hits both alike; the
figure is the ratio of the median epoch times. The first epoch of each is a warm-up and not timed.

    python benchmarks/bench_mwam.py --dataset mfeat --epochs 6
    python benchmarks/bench_mwam.py --dataset avdigits --mode hybrid --out bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from robustfusion.atomic import write_json
from robustfusion.data import load_dataset
from robustfusion.data.base import TensorMultimodalDataset
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model
from robustfusion.training.config import TrainConfig


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
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "loss", "gradient"])
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
        help="multi-tensor Adam (the default on GPUs; on CPUs torch loops over parameters, "
        "so MWAM's extra head parameters cost more there)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)

    splits = load_dataset(args.dataset, seed=0)
    models: dict[str, MultimodalModel] = {}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for name in (args.inner, f"mwam+{args.inner}"):
        config = TrainConfig(
            dataset=args.dataset,
            method=name,
            method_options={"mwam": {"mode": args.mode}},
            out="unused",
        )
        torch.manual_seed(0)
        models[name] = build_model(config, splits.info)
        optimizers[name] = torch.optim.Adam(
            models[name].parameters(), lr=1e-3, foreach=True if args.foreach else None
        )
    times: dict[str, list[float]] = {name: [] for name in models}
    for epoch in range(args.epochs + 1):
        for name, model in models.items():
            seconds = _epoch(model, optimizers[name], splits.train, args.batch_size, seed=epoch)
            if epoch > 0:
                times[name].append(seconds)
    base, wrapped = (statistics.median(times[name]) for name in models)
    result = {
        "dataset": args.dataset,
        "mode": args.mode,
        "batch_size": args.batch_size,
        "train_samples": len(splits.train),
        "epochs_timed": args.epochs,
        "clock": "process CPU time",
        "median_epoch_seconds": {name: statistics.median(t) for name, t in times.items()},
        "ratio_mwam_over_inner": wrapped / base,
        "torch_threads": args.threads,
        "flush_denormal": not args.keep_denormals,
        "foreach_adam": args.foreach,
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
