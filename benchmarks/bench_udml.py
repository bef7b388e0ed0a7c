"""Training step time of UDML against static fusion, measured in the same process (issue 12:
udml <= 2.0x static on mfeat, <= 1.2x on avdigits).

Both models are built by the trainer's own builder on the same data and batches and trained in a
plain PyTorch loop with every hook the trainer calls (``prepare_batch``, ``losses``,
``after_backward``, ``logged_values``). UDML is timed in its most expensive phase (noise injection,
full weights: epoch 8 of 10). Blocks of steps alternate between the methods (static, udml, static,
udml, ...) so that load on a shared machine hits both alike; the figure is the ratio of the median
per-step times over blocks. The first block of each is a warm-up. The ratio of the two models'
matrix-product FLOPs per step (``flops.py``) is printed beside it: the ratio no implementation of
the same model gets below where the products dominate. The time UDML spends in
``prepare_batch`` (noise injection: the shared random source) is reported separately, with the
ratio without it.

    python benchmarks/bench_udml.py --dataset avdigits
    python benchmarks/bench_udml.py --dataset mfeat --out bench_udml_mfeat.json
    python benchmarks/bench_udml.py --dataset mfeat --dataset-option views=fou,mor \\
        --udml-option head=fusion coupling=decoupled alpha_at=neutral
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml
from flops import training_step_flops

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import load_dataset
from robustfusion.data.base import TensorMultimodalDataset
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model
from robustfusion.training.config import TrainConfig
from robustfusion.training.optim import build_optimizer


def _block(
    model: MultimodalModel,
    optimizer: torch.optim.Optimizer,
    dataset: TensorMultimodalDataset,
    batch_size: int,
    steps: int,
    seed: int,
) -> tuple[float, float]:
    """``steps`` training steps; returns (seconds per step, seconds per step in prepare_batch)."""
    method = model.method
    model.train()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    batches = [
        dataset.__getitems__(order[(i * batch_size) % len(dataset) :][:batch_size].tolist())
        for i in range(steps)
    ]
    prepare = 0.0
    started = time.perf_counter()
    for batch in batches:
        tick = time.perf_counter()
        batch = method.prepare_batch(batch, True)
        prepare += time.perf_counter() - tick
        output = model(batch)
        loss = torch.stack(list(method.losses(output, batch).values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model.encoders)
        optimizer.step()
        method.logged_values()
    return (time.perf_counter() - started) / steps, prepare / steps


def _pairs(items: list[str]) -> dict[str, object]:
    """``["k=v", ...]`` -> ``{k: yaml(v)}``."""
    return {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per method")
    parser.add_argument("--steps", type=int, default=10, help="steps per block")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--cnn-width", type=int, default=32)
    parser.add_argument("--fusion", default="concat")
    parser.add_argument("--dataset-option", nargs="*", default=[], help="KEY=VALUE")
    parser.add_argument("--udml-option", nargs="*", default=[], help="udml KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    keep_freed_memory()  # as the command line runs (robustfusion/allocator.py)
    torch.set_num_threads(args.threads)

    dataset_options = _pairs(args.dataset_option)
    udml_options = _pairs(args.udml_option)
    splits = load_dataset(args.dataset, seed=0, **dataset_options)
    models: dict[str, MultimodalModel] = {}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for name in ("static", "udml"):
        config = TrainConfig(
            dataset=args.dataset,
            method=name,
            fusion=args.fusion,
            method_options={"udml": udml_options} if name == "udml" and udml_options else {},
            feature_dim=args.feature_dim,
            hidden_dim=args.hidden_dim,
            encoder_options={"cnn": {"width": args.cnn_width}},
            out="unused",
        )
        torch.manual_seed(0)
        models[name] = build_model(config, splits.info)
        models[name].method.on_epoch_start(8, 10)
        optimizers[name] = build_optimizer(models[name].parameters(), config)  # the trainer's
    probe = splits.train.__getitems__(list(range(args.batch_size)))
    flops = {name: training_step_flops(model, probe) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    prepare: list[float] = []
    for block in range(args.blocks + 1):
        for name, model in models.items():
            per_step, in_prepare = _block(
                model, optimizers[name], splits.train, args.batch_size, args.steps, seed=block
            )
            if block > 0:
                times[name].append(per_step)
                if name == "udml":
                    prepare.append(in_prepare)
    static, udml = (statistics.median(times[name]) for name in ("static", "udml"))
    in_prepare = statistics.median(prepare)
    result = {
        "dataset": args.dataset,
        "dataset_options": dataset_options,
        "udml_options": udml_options,
        "fusion": args.fusion,
        "batch_size": args.batch_size,
        "feature_dim": args.feature_dim,
        "hidden_dim": args.hidden_dim,
        "cnn_width": args.cnn_width,
        "modalities": len(splits.info.modalities),
        "blocks_timed": args.blocks,
        "steps_per_block": args.steps,
        "median_step_ms": {"static": 1000 * static, "udml": 1000 * udml},
        "udml_prepare_batch_ms": 1000 * in_prepare,
        "ratio_udml_over_static": udml / static,
        "ratio_without_prepare_batch": (udml - in_prepare) / static,
        "matmul_mflops_per_step": {name: value / 1e6 for name, value in flops.items()},
        "matmul_flop_ratio_udml_over_static": flops["udml"] / flops["static"],
        "torch_threads": args.threads,
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
