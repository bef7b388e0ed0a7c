"""``robustfusion benchmark``: train methods x seeds once, evaluate over a corruption grid, report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from robustfusion.commands._options import nested_options
from robustfusion.commands._settings import (
    SETTINGS,
    add_print_config_argument,
    add_settings,
    overrides_from_args,
)
from robustfusion.errors import ConfigError
from robustfusion.evaluation.benchmark import Benchmark, BenchmarkConfig, parse_list
from robustfusion.evaluation.grids import default_grid
from robustfusion.training.config import TrainConfig, setting_names

NAME = "benchmark"
HELP = "train each (method, seed), evaluate over corruption grids; writes results.csv and report.md (resumable)"

#: Settings a benchmark sets per cell: ``--methods`` and ``--seeds`` replace them.
_PER_CELL = ("method", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bench = parser.add_argument_group("benchmark")
    bench.add_argument(
        "--methods",
        required=True,
        help="comma-separated methods, e.g. static,unimodal,tmc,qmf (required)",
    )
    bench.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    bench.add_argument("--out", required=True, metavar="DIR", help="benchmark folder (required)")
    bench.add_argument(
        "--quick", action="store_true", help="a small grid for a first look (default: full grid)"
    )
    bench.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="a config.yaml whose settings every run starts from (default: none)",
    )
    bench.add_argument(
        "--method-setting",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="a training setting for one method only, e.g. tmc.epochs=60 (repeatable; "
        "default: none)",
    )
    bench.add_argument(
        "--eval-seed", type=int, default=0, help="seeds the corruptions (default: 0)"
    )
    bench.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="train and evaluate N (method, seed) cells in parallel processes (default: 1)",
    )
    bench.add_argument(
        "--weight-controls",
        action="store_true",
        help="also train the uniform twin of every method with per-sample weights and evaluate "
        "each checkpoint with learned, uniform and oracle weights (default: off)",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument(
        "--report-only", action="store_true", help="only rewrite report.md from results.csv"
    )
    add_print_config_argument(bench)
    add_settings(parser, exclude=_PER_CELL)


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    base = TrainConfig.from_yaml(Path(args.config)) if args.config else TrainConfig()
    settings_given = [s for s in SETTINGS if s.field not in _PER_CELL]
    base = base.with_overrides(**overrides_from_args(args, settings_given))
    if args.dataset is not None and args.data is None:
        base = dataclasses.replace(base, data=None)
    if args.data is not None and args.dataset is None:
        base = dataclasses.replace(base, dataset=None)
    if (base.dataset is None) == (base.data is None):
        raise ConfigError("give exactly one of --dataset NAME or --data FILE.npz")
    per_method = nested_options(args.method_setting, "--method-setting") or {}
    fields = set(setting_names()) - {"method", "seed", "out"}
    for method, values in per_method.items():
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
        method_overrides=per_method,
        jobs=args.jobs,
        weight_controls=args.weight_controls,
    )


def check_cells(benchmark: Benchmark) -> list[tuple[TrainConfig, TrainConfig]]:
    """``(config, resolved)`` of every method's first-seed run: unknown names, bad values and
    hardware this machine lacks fail here, before the benchmark writes anything."""
    from robustfusion.training.run import check_hardware

    config = benchmark.config
    cells = []
    checked: set[tuple[object, ...]] = set()
    for method in config.methods:
        cell = benchmark.train_config(method, config.seeds[0])
        resolved = cell.resolved()
        hardware = (resolved.accelerator, resolved.devices, resolved.strategy, resolved.precision)
        if hardware not in checked:  # shared unless --method-setting changes them
            check_hardware(resolved)
            checked.add(hardware)
        cells.append((cell, resolved))
    return cells


def run(args: argparse.Namespace) -> int:
    if args.report_only:
        from robustfusion.evaluation.report import write_report

        print(write_report(Path(args.out)))
        return 0
    config = config_from_args(args)
    benchmark = Benchmark(config, progress=not args.no_progress)
    cells = check_cells(benchmark)
    if args.print_config:
        documents = []
        for cell, resolved in cells:
            recipe = sorted(k for k in cell.recipe() if k not in (cell.given or ()))
            header = f"# {cell.method}, seed {cell.seed}"
            header += f"; from the method's recipe: {', '.join(recipe)}\n" if recipe else "\n"
            documents.append(header + resolved.to_yaml_text())
        sys.stdout.write("---\n".join(documents))
        return 0
    report = benchmark.run()
    print(f"report: {report}")
    return 0
