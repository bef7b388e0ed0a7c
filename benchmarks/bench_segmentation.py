"""Segmentation training step time of each method against static fusion, in one process (issue 19:
udml <= 1.3x static, mwam <= 1.1x, at 64x64 and 240x320 on CPU), and each method's peak memory.

Models are built by the trainer's own builder for an RGB-D segmentation dataset and trained in a
plain PyTorch loop with every hook the trainer calls (``prepare_batch``, ``losses``,
``after_backward``, ``logged_values``), in each method's most expensive phase (epoch 8 of 10).
Blocks of steps alternate between the methods so that load on a shared machine hits all alike; the
figure is the ratio of median per-step times over blocks, the first block a warm-up.

``--size 64`` uses ``rgbd_scenes``; other sizes (``240x320``, ``480x640``) use random RGB-D inputs
and labels of that size (a step's cost does not depend on the values). Peak memory: each method
trains a few steps alone in a fresh process (``ru_maxrss`` on CPU; on CUDA
``torch.cuda.max_memory_allocated``). On a GPU (``--device cuda``) ``--epoch`` times one epoch of
``--epoch-samples`` samples in fp32 and bf16 (autocast) and reports samples/s. ``--decoder
skips`` builds every model with skip scores (docs/segmentation.md); a label ``NAME@head`` or
``NAME@skips`` times one method with the other decoder (``static@head`` beside ``static`` gives
the cost of the skips themselves).

    python benchmarks/bench_segmentation.py --size 64
    python benchmarks/bench_segmentation.py --size 240x320 --encoder resnet18 --output-stride 16 \\
        --batch-size 4 --steps 2 --blocks 3
    python benchmarks/bench_segmentation.py --size 480x640 --device cuda --epoch
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import (
    DatasetInfo,
    DataSplits,
    ModalityInfo,
    TensorMultimodalDataset,
    load_dataset,
)
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model
from robustfusion.training.config import TrainConfig
from robustfusion.training.optim import build_optimizer

METHODS = ("static", "pe", "udml", "mwam", "modality_dropout", "mwam+modality_dropout")


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width or height)


def _data(size: tuple[int, int], count: int) -> DataSplits:
    if size[0] == size[1] == 64:
        return load_dataset("rgbd_scenes", seed=0, train=count, val=8, test=8)
    g = torch.Generator().manual_seed(0)
    h, w = size
    train = TensorMultimodalDataset(
        {"rgb": torch.randn(count, 3, h, w, generator=g),
         "depth": torch.randn(count, 1, h, w, generator=g)},
        torch.randint(0, 40, (count, h, w), generator=g),
    )  # fmt: skip
    info = DatasetInfo(
        "random_rgbd",
        (ModalityInfo("rgb", (3, h, w), "image", 1 / 58.0), ModalityInfo("depth", (1, h, w), "map", 1.0)),
        num_classes=40,
        task="segmentation",
    )  # fmt: skip
    return DataSplits(train, train, train, info)


def _model(args: argparse.Namespace, label: str, info: DatasetInfo) -> MultimodalModel:
    """``label``: a method name, or ``NAME@DECODER`` to time it with another decoder."""
    method, _, decoder = label.partition("@")
    options: dict[str, Any] = {"cnn": {"width": args.cnn_width}}
    if args.encoder == "resnet18":
        options = {"resnet18": {"output_stride": args.output_stride}}
    config = TrainConfig(
        dataset=info.name,
        method=method,
        encoders={"rgb": args.encoder, "depth": args.encoder},
        encoder_options=options,
        feature_dim=args.feature_dim,
        hidden_dim=args.hidden_dim,
        decoder=decoder or args.decoder,
        out="unused",
    )
    torch.manual_seed(0)
    model = build_model(config, info).to(args.device)
    model.method.on_epoch_start(8, 10)
    return model


def _steps(model: MultimodalModel, optimizer: Any, batches: list, dtype: Any = None) -> float:
    """Seconds per training step over ``batches``."""
    method = model.method
    model.train()
    if args_device(model) == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        batch = method.prepare_batch(batch.to(args_device(model)), True)
        with torch.autocast(args_device(model), dtype=dtype, enabled=dtype is not None):
            output = model(batch)
            loss = torch.stack(list(method.losses(output, batch).values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model.encoders)
        optimizer.step()
        method.logged_values()
    if args_device(model) == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / max(len(batches), 1)


def args_device(model: MultimodalModel) -> str:
    return next(model.parameters()).device.type


def _batches(dataset: TensorMultimodalDataset, size: int, steps: int, seed: int) -> list:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return [dataset.__getitems__(order[(i * size) % len(order) :][:size]) for i in range(steps)]


def _peak(args: argparse.Namespace, method: str) -> float:
    """Peak memory (MiB) of a fresh process that trains ``method`` for a few steps: on CPU the
    resident-set high-water mark since the imports (``VmHWM`` after resetting it through
    ``/proc/self/clear_refs``; ``ru_maxrss`` would carry the parent's peak over the fork)."""
    torch.set_num_threads(args.threads)
    if args.device != "cuda":
        Path("/proc/self/clear_refs").write_text("5")
    splits = _data(_size(args.size), args.batch_size * 2)
    model = _model(args, method, splits.info)
    optimizer = build_optimizer(model.parameters(), TrainConfig(dataset="x", out="unused"))
    _steps(model, optimizer, _batches(splits.train, args.batch_size, 2, 0))
    if args.device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64", help="H or HxW")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--encoder", default="cnn", choices=("cnn", "resnet18"))
    parser.add_argument("--output-stride", type=int, default=16)
    parser.add_argument(
        "--decoder",
        default="head",
        choices=("head", "skips"),
        help="every method's decoder; a label NAME@head or NAME@skips overrides it",
    )
    parser.add_argument("--cnn-width", type=int, default=32)
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per method")
    parser.add_argument("--steps", type=int, default=5, help="steps per block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--epoch", action="store_true", help="one epoch in fp32 and bf16 (GPU)")
    parser.add_argument("--epoch-samples", type=int, default=795)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    peaks: dict[str, float] = {}
    if not args.no_peak:  # first, while this process is small: each child is forked from it
        context = multiprocessing.get_context("spawn")
        with context.Pool(1, maxtasksperchild=1) as pool:
            peaks = {m: round(pool.apply(_peak, (args, m)), 1) for m in methods}
    splits = _data(_size(args.size), max(args.batch_size * args.steps, 64))
    models = {m: _model(args, m, splits.info) for m in methods}
    config = TrainConfig(dataset="x", out="unused")
    optimizers = {m: build_optimizer(model.parameters(), config) for m, model in models.items()}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for block in range(args.blocks + 1):
        batches = _batches(splits.train, args.batch_size, args.steps, block)
        for m in methods:
            per_step = _steps(models[m], optimizers[m], batches)
            if block > 0:
                times[m].append(per_step)
    median = {m: statistics.median(times[m]) for m in methods}
    result: dict[str, Any] = {
        "size": list(_size(args.size)),
        "data": splits.info.name,
        "encoder": args.encoder,
        "output_stride": args.output_stride if args.encoder == "resnet18" else 8,
        "decoder": args.decoder,
        "batch_size": args.batch_size,
        "blocks_timed": args.blocks,
        "steps_per_block": args.steps,
        "torch_threads": args.threads,
        "device": args.device,
        "median_step_ms": {m: round(1000 * t, 2) for m, t in median.items()},
    }
    if "static" in median:
        result["ratio_over_static"] = {m: round(t / median["static"], 3) for m, t in median.items()}
    if peaks:
        result["peak_mib"] = peaks
    if args.epoch:
        data = _data(_size(args.size), args.epoch_samples)
        epoch = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            epoch[name] = {}
            for m in methods:
                model = _model(args, m, data.info)
                optimizer = build_optimizer(model.parameters(), config)
                if args.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                steps = len(data.train) // args.batch_size
                batches = _batches(data.train, args.batch_size, steps, 0)
                seconds = _steps(model, optimizer, batches, dtype) * steps
                epoch[name][m] = {"samples_per_s": round(steps * args.batch_size / seconds, 1)}
                if args.device == "cuda":
                    epoch[name][m]["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        result["epoch"] = epoch
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
