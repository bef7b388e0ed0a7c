"""``robustfusion benchmark``: train methods x seeds once, evaluate over a corruption grid, report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from robustfusion.commands._options import nested_options
from robustfusion.errors import ConfigError
from robustfusion.evaluation.benchmark import Benchmark, BenchmarkConfig, parse_list
from robustfusion.evaluation.grids import default_grid
from robustfusion.training.config import TrainConfig

NAME = "benchmark"
HELP = "train each (method, seed), evaluate over corruption grids; writes results.csv and report.md (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="a registered dataset (see 'robustfusion datasets')")
    parser.add_argument("--data", help="your own data: an .npz in the generic format")
    parser.add_argument("--data-root", help="folder of a dataset's prepared files")
    parser.add_argument(
        "--methods", required=True, help="comma-separated methods, e.g. static,unimodal,tmc,qmf"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--out", required=True, help="benchmark folder DIR (resumable)")
    parser.add_argument("--quick", action="store_true", help="a small grid for a first look")
    parser.add_argument("--config", help="a config.yaml whose settings every run starts from")
    parser.add_argument("--fusion", help="fusion head for every method (default concat)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default 30)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default 64)")
    parser.add_argument("--lr", type=float, help="base learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default 1e-4)")
    parser.add_argument(
        "--method-option",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="method option, e.g. qmf.rank_weight=0.5 (repeatable)",
    )
    parser.add_argument(
        "--method-setting",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="a training setting for one method only, e.g. tmc.epochs=60 (repeatable)",
    )
    parser.add_argument("--accelerator", help="cpu (default), gpu, auto ...")
    parser.add_argument("--eval-seed", type=int, default=0, help="seeds the corruptions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite report.md from results.csv"
    )


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    base = TrainConfig.from_yaml(Path(args.config)) if args.config else TrainConfig()
    base = base.with_overrides(
        dataset=args.dataset,
        data=args.data,
        data_root=args.data_root,
        fusion=args.fusion,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        accelerator=args.accelerator,
        method_options=nested_options(args.method_option, "--method-option"),
    )
    if args.dataset is not None and args.data is None:
        base = dataclasses.replace(base, data=None)
    if args.data is not None and args.dataset is None:
        base = dataclasses.replace(base, dataset=None)
    if (base.dataset is None) == (base.data is None):
        raise ConfigError("give exactly one of --dataset NAME or --data FILE.npz")
    settings = nested_options(args.method_setting, "--method-setting") or {}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"method", "seed", "out"}
    for method, values in settings.items():
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(
                f"--method-setting {method}.{unknown[0]}: unknown setting; use one of "
                f"{', '.join(sorted(fields))}"
            )
    grid = dataclasses.replace(default_grid(args.quick), eval_seed=args.eval_seed)
    return BenchmarkConfig(
        methods=parse_list(args.methods, "--methods"),
        seeds=parse_list(args.seeds, "--seeds", int),
        out=Path(args.out).expanduser().resolve(),
        base=base,
        grid=grid,
        method_overrides=settings,
    )


def run(args: argparse.Namespace) -> int:
    if args.report_only:
        from robustfusion.evaluation.report import write_report

        print(write_report(Path(args.out)))
        return 0
    config = config_from_args(args)
    from robustfusion.registry import METHODS

    for method in config.methods:
        for part in method.split("+"):
            METHODS.get(part)  # unknown names fail before any training
    report = Benchmark(config, progress=not args.no_progress).run()
    print(f"report: {report}")
    return 0
