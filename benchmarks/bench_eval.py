"""The CNN encoder's memory layout and the evaluation's pass size, measured in one process.

Two choices of the package are timed against their alternative on the same weights and data:

* ``SmallCNNEncoder`` runs in the channels-last layout; the alternative is torch's default
  (contiguous NCHW) layout. Timed: one training step (forward, backward, Adam) and one inference
  pass, per row.
* ``evaluate_many`` caps a forward pass at ``MAX_VALUES_PER_PASS`` input values
  (``copies_per_pass``: one test batch of 256 rows on avdigits); the alternative is the former
  cap of 4096 rows. Timed: inference per
  row at both sizes.

Measurements alternate between the variants (A, B, A, B, ...) so that load on a shared machine
hits both alike; each figure is the median over blocks, and the ratios are variant / package
choice (above 1: the package's choice is faster).

    python benchmarks/bench_eval.py --dataset avdigits --threads 1
    python benchmarks/bench_eval.py --dataset fsdd_digits --threads 1 --out bench_eval.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from robustfusion.allocator import keep_freed_memory
from robustfusion.atomic import write_json
from robustfusion.data import load_dataset
from robustfusion.encoders.cnn import SmallCNNEncoder
from robustfusion.evaluation.evaluate import copies_per_pass


class _DefaultLayoutCNN(SmallCNNEncoder):
    """The same encoder in torch's default (NCHW-contiguous) layout: the alternative timed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.features.to(memory_format=torch.contiguous_format)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.pool(self.features(x.contiguous())).flatten(1)


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _train_step(encoder: nn.Module, x: Tensor, optimizer: torch.optim.Optimizer) -> None:
    encoder.train()
    optimizer.zero_grad(set_to_none=True)
    encoder(x).square().mean().backward()
    optimizer.step()


@torch.no_grad()
def _infer(encoder: nn.Module, x: Tensor, rows: int) -> None:
    encoder.eval()
    for start in range(0, x.shape[0], rows):
        encoder(x[start : start + rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--modality", default=None, help="default: the largest 2-D modality")
    parser.add_argument("--width", type=int, default=16, help="CNN width (the leaderboard's)")
    parser.add_argument("--feature-dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="training batch")
    parser.add_argument("--eval-rows", type=int, default=4096, help="rows timed per inference")
    parser.add_argument("--eval-batch-size", type=int, default=256, help="the trainer's default")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    keep_freed_memory()  # as the command line runs (robustfusion/allocator.py)
    torch.set_num_threads(args.threads)

    splits = load_dataset(args.dataset, seed=0)
    maps = [m for m in splits.info.modalities if len(m.shape) >= 2]
    if not maps:
        raise SystemExit(f"{args.dataset} has no 2-D modality for the CNN encoder")
    info = next((m for m in maps if m.name == args.modality), None) or max(
        maps, key=lambda m: torch.Size(m.shape).numel()
    )
    shape = tuple(info.shape)
    train = torch.as_tensor(splits.train.arrays[info.name][: args.batch_size])
    test = torch.as_tensor(splits.test.arrays[info.name])
    test = test.repeat((args.eval_rows + len(test) - 1) // len(test), *([1] * (test.dim() - 1)))
    test = test[: args.eval_rows]
    values_per_row = sum(torch.Size(m.shape).numel() for m in splits.info.modalities)
    capped_rows = args.eval_batch_size * copies_per_pass(args.eval_batch_size, values_per_row)

    torch.manual_seed(0)
    ours = SmallCNNEncoder(shape, out_dim=args.feature_dim, width=args.width)
    default = _DefaultLayoutCNN(shape, out_dim=args.feature_dim, width=args.width)
    default.load_state_dict(ours.state_dict())
    optimizers = {
        "channels_last": torch.optim.Adam(ours.parameters()),
        "default": torch.optim.Adam(default.parameters()),
    }
    encoders = {"channels_last": ours, "default": default}

    timed: dict[str, list[float]] = {}
    for block in range(args.blocks + 1):
        runs: dict[str, Callable[[], object]] = {}
        for name, encoder in encoders.items():
            runs[f"train_step/{name}"] = lambda e=encoder, n=name: _train_step(
                e, train, optimizers[n]
            )
            runs[f"inference/{name}/capped"] = lambda e=encoder: _infer(e, test, capped_rows)
        runs["inference/channels_last/4096_rows"] = lambda: _infer(ours, test, 4096)
        for key, fn in runs.items():
            seconds = _median_seconds(fn, 3)
            if block > 0:  # the first block warms up
                timed.setdefault(key, []).append(seconds)
    median = {key: statistics.median(values) for key, values in timed.items()}
    per_row_us = {
        key: 1e6 * value / (args.batch_size if key.startswith("train") else len(test))
        for key, value in median.items()
    }
    result = {
        "dataset": args.dataset,
        "modality": info.name,
        "input_shape": list(shape),
        "cnn_width": args.width,
        "torch_threads": args.threads,
        "rows_per_pass_capped": capped_rows,
        "microseconds_per_row": per_row_us,
        "ratio_default_layout_over_channels_last": {
            "train_step": median["train_step/default"] / median["train_step/channels_last"],
            "inference": median["inference/default/capped"]
            / median["inference/channels_last/capped"],
        },
        "ratio_4096_rows_over_capped_pass": median["inference/channels_last/4096_rows"]
        / median["inference/channels_last/capped"],
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
