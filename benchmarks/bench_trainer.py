"""Training samples/s of our trainer against a plain PyTorch loop on the same model and data
(issue 12: ours >= 0.8x), with the peak memory (RSS) of each dataset's process.

Both sides build the model with the trainer's own builder (``build_model``, same seed, same
initial weights), train it on the same training split with the same batch size, optimiser,
learning-rate schedule (``method.lr_scale``), method hooks (``on_epoch_start``, ``prepare_batch``,
``losses``, ``after_backward``) and epochs, and validate once per epoch keeping the best weights
(the model selection the trainer does). Ours is ``robustfusion.training.run.train`` (the CLI's
path; its ``fit_seconds`` from ``timing.json``), which also writes the resumable checkpoint and
the CSV log every epoch; the plain loop writes nothing. Runs alternate (plain, ours, ours,
plain, ...) in one process per dataset so that load on a shared machine hits both alike, after
one untimed warm-up run of each; the figure is the ratio of the median samples/s. Each dataset
runs in its own child process whose peak RSS (``resource.getrusage``) is reported, after the
plain loop's warm-up alone and at the end.

    python benchmarks/bench_trainer.py                              # mfeat and avdigits, CPU
    python benchmarks/bench_trainer.py --datasets mfeat --epochs 1 --repeats 1   # smoke test
    python benchmarks/bench_trainer.py --accelerator gpu --precision bf16-mixed --threads 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import collate
from robustfusion.threads import configure_threads
from robustfusion.training.build import build_model, load_data
from robustfusion.training.config import TrainConfig
from robustfusion.training.datamodule import EpochSeededSampler, collate_pinnable
from robustfusion.training.optim import build_optimizer
from robustfusion.training.run import train
from robustfusion.training.seeding import seed_all

PRECISIONS = ("32-true", "bf16-mixed")


def _config(args: argparse.Namespace, dataset: str, out: Path) -> TrainConfig:
    return TrainConfig(
        dataset=dataset,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden_dim=args.hidden_dim,
        feature_dim=args.feature_dim,
        encoder_options={"cnn": {"width": args.cnn_width}} if args.cnn_width else {},
        seed=0,
        accelerator=args.accelerator,
        precision=args.precision,
        num_workers=args.num_workers,
        out=str(out),
    )


def _device(accelerator: str) -> torch.device:
    return torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(config: TrainConfig, splits: Any) -> float:
    """Train as a plain PyTorch loop would; returns the seconds from optimiser to last epoch."""
    device = _device(config.accelerator)
    seed_all(config.seed)
    model = build_model(config, splits.info).to(device)
    method = model.method
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    _sync(device)
    started = time.perf_counter()
    optimizer = build_optimizer(model.parameters(), config)  # the trainer's own choice
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: float(method.lr_scale(epoch, config.epochs))
    )
    pin = device.type == "cuda"
    sampler = EpochSeededSampler(len(splits.train), config.seed)
    train_loader = DataLoader(
        splits.train,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_pinnable if pin else collate,
        pin_memory=pin,
        num_workers=config.num_workers,
    )
    val_loader = DataLoader(
        splits.val,
        batch_size=config.eval_batch_size,
        collate_fn=collate_pinnable if pin else collate,
        pin_memory=pin,
        num_workers=config.num_workers,
    )
    autocast = config.precision == "bf16-mixed"
    best, best_state = -1.0, None
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        model.train()
        method.on_epoch_start(epoch, config.epochs)
        for batch in train_loader:
            batch = batch.to(device, non_blocking=pin)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                batch = method.prepare_batch(batch, True)
                output = model(batch)
                loss = torch.stack(list(method.losses(output, batch).values())).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.after_backward(model.encoders)
            if config.gradient_clip_val:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip_val)
            optimizer.step()
        schedule.step()
        model.eval()
        correct = torch.zeros((), device=device)
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast),
        ):
            for batch in val_loader:
                batch = method.prepare_batch(batch.to(device, non_blocking=pin), False)
                correct += (model(batch).logits.argmax(1) == batch.target).sum()
        accuracy = float(correct) / len(splits.val)
        if accuracy > best:
            best = accuracy
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    _sync(device)
    seconds = time.perf_counter() - started
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    assert best_state is not None
    return seconds


def ours(config: TrainConfig) -> float:
    """Train with ``robustfusion.training.run.train``; returns its ``fit_seconds`` (each repeat
    replaces the previous run in the same folder)."""
    train(config, overwrite=True, progress=False)
    return float(json.loads((Path(config.out) / "timing.json").read_text())["fit_seconds"])  # type: ignore[arg-type]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(args: argparse.Namespace, dataset: str) -> dict[str, Any]:
    """One dataset: warm-up, then ``repeats`` alternating pairs; the figures as a dict."""
    threads = configure_threads(args.threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as Lightning's deterministic
    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        config = _config(args, dataset, Path(tmp) / "run")
        splits = load_data(config)
        samples = config.epochs * len(splits.train)
        warm = dataclasses.replace(config, epochs=1)
        plain_loop(warm, splits)
        rss_plain = _rss_mb()
        ours(warm)
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        for rep in range(args.repeats):
            order = ("plain", "ours") if rep % 2 == 0 else ("ours", "plain")
            for side in order:
                seconds = plain_loop(config, splits) if side == "plain" else ours(config)
                times[side].append(seconds)
        assert torch.get_num_threads() == threads, "a run changed torch's thread count"
    plain_rate = samples / statistics.median(times["plain"])
    ours_rate = samples / statistics.median(times["ours"])
    return {
        "dataset": dataset,
        "method": args.method,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "threads": threads,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_samples": len(splits.train),
        "repeats": args.repeats,
        "seconds": times,
        "plain_samples_per_s": round(plain_rate, 1),
        "ours_samples_per_s": round(ours_rate, 1),
        "ratio_ours_over_plain": round(ours_rate / plain_rate, 3),
        "peak_rss_mb_after_plain_warmup": round(rss_plain, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "cuda_peak_mb": (
            round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if torch.cuda.is_available() and args.accelerator in ("gpu", "cuda")
            else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mfeat,avdigits", help="comma-separated names")
    parser.add_argument("--method", default="static")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--cnn-width", type=int, default=None, help="cnn encoder width")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu")
    parser.add_argument("--precision", default="32-true", choices=PRECISIONS)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    keep_freed_memory()  # as the command line runs (robustfusion/allocator.py)
    if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        print(
            "error: --accelerator gpu needs a CUDA device: run on a GPU machine or use cpu",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.child is not None:
        print(json.dumps(child(args, args.child)))
        return
    results = []
    for dataset in args.datasets.split(","):
        command = [sys.executable, __file__, *sys.argv[1:], "--child", dataset]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"error: the {dataset} run failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            sys.exit(1)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{dataset:>9}: ours {r['ours_samples_per_s']:>9.1f} samples/s, plain "
            f"{r['plain_samples_per_s']:>9.1f} samples/s, ratio {r['ratio_ours_over_plain']:.3f}; "
            f"peak RSS {r['peak_rss_mb']:.0f} MB (plain loop alone "
            f"{r['peak_rss_mb_after_plain_warmup']:.0f} MB)",
            flush=True,
        )
    print(json.dumps(results, indent=2))
    if args.out is not None:
        write_json(args.out, {"results": results})


if __name__ == "__main__":
    main()
