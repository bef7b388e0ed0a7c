"""``robustfusion benchmark``: train methods x seeds once, evaluate over a corruption grid, report."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from robustfusion.accepts import TEXT, ArgType, PairType, integer
from robustfusion.commands._options import nested_options
from robustfusion.commands._settings import (
    SETTINGS,
    add_print_config_argument,
    add_settings,
    overrides_from_args,
)
from robustfusion.errors import ConfigError
from robustfusion.evaluation.benchmark import Benchmark, BenchmarkConfig, parse_list
from robustfusion.evaluation.conflict import ConflictProtocol
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
        type=ArgType(TEXT, "--methods"),
        help="comma-separated method labels, e.g. static,tmc,udml:preset=paper (no default: "
        "required unless --suite); a label is NAME[:OPTION=VALUE...], see docs/benchmark.md",
    )
    bench.add_argument(
        "--suite",
        type=ArgType(TEXT, "--suite"),
        metavar="NAME",
        help="run a named suite of benchmarks instead (several datasets, each with its own "
        "methods, seeds, epochs and grid), e.g. leaderboard; see docs/benchmark.md "
        "(default: none)",
    )
    bench.add_argument(
        "--part",
        type=ArgType(TEXT, "--part"),
        action="append",
        metavar="NAME",
        help="with --suite: run only this part (repeatable; default: every part)",
    )
    bench.add_argument(
        "--results-page",
        type=ArgType(TEXT, "--results-page"),
        metavar="FILE.md",
        help="with --suite: also write one results page over every part (default: none)",
    )
    bench.add_argument(
        "--seeds",
        default="0",
        type=ArgType(integer(0, 2**32 - 1), "--seeds", items=True),
        help="comma-separated seeds (default: 0)",
    )
    bench.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        type=ArgType(TEXT, "--out"),
        help="benchmark folder (required)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="a small grid for a first look (default: full grid)"
    )
    bench.add_argument(
        "--config",
        type=ArgType(TEXT, "--config"),
        metavar="FILE.yaml",
        help="a config.yaml whose settings every run starts from (default: none)",
    )
    bench.add_argument(
        "--method-setting",
        action="append",
        type=PairType("--method-setting", nested=True),
        metavar="NAME.KEY=VALUE",
        help="a training setting for one method only, e.g. tmc.epochs=60 (repeatable; "
        "default: none)",
    )
    bench.add_argument(
        "--eval-seed",
        type=ArgType(integer(0, 2**32 - 1), "--eval-seed"),
        default=0,
        help="seeds the corruptions (default: 0)",
    )
    bench.add_argument(
        "--jobs",
        type=ArgType(integer(1, 1024), "--jobs"),
        default=None,
        metavar="N",
        help="train and evaluate N (method, seed) runs in parallel worker processes (default: "
        "the cores this process may use on CPU, 1 on an accelerator); results do not depend "
        "on it",
    )
    bench.add_argument(
        "--threads-per-job",
        type=ArgType(integer(1, 1024), "--threads-per-job"),
        default=1,
        metavar="N",
        help="torch intra-op threads of every run (default: 1); fixed whatever --jobs, since "
        "the thread count can change the last bits of the results",
    )
    bench.add_argument(
        "--conflict",
        action="store_true",
        help="also evaluate every run on RCML's conflictive test set (Gaussian noise, std 0.5, "
        "on some views of 10 %% of the test samples; one view taken from a sample of class "
        "y+1 for 40 %%; averaged over the noise draws); see docs/benchmark.md (default: off)",
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


def default_jobs(accelerator: str) -> int:
    """One worker per usable core on CPU; one on an accelerator."""
    if accelerator == "cpu":
        return max(1, len(os.sched_getaffinity(0)))
    if accelerator == "auto":
        import torch

        if not torch.cuda.is_available():
            return max(1, len(os.sched_getaffinity(0)))
    return 1


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    if args.methods is None:
        raise ConfigError("give --methods LIST (e.g. static,tmc,udml) or --suite NAME")
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
    grid = dataclasses.replace(
        default_grid(args.quick),
        eval_seed=args.eval_seed,
        conflict=ConflictProtocol() if args.conflict else None,
    )
    return BenchmarkConfig(
        methods=parse_list(args.methods, "--methods"),
        seeds=tuple(args.seeds),
        out=Path(args.out).expanduser().resolve(),
        base=base,
        grid=grid,
        method_overrides=per_method,
        jobs=args.jobs if args.jobs is not None else default_jobs(base.accelerator),
        threads_per_job=args.threads_per_job,
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


def run_suite_command(args: argparse.Namespace) -> int:
    """``--suite NAME``: every part of a named suite (its own datasets, methods and settings)."""
    from robustfusion.evaluation.suites import get_suite, run_suite

    clashing = [flag for flag, value in (("--methods", args.methods), ("--dataset", args.dataset),
                ("--data", args.data), ("--config", args.config)) if value]  # fmt: skip
    if clashing:
        raise ConfigError(
            f"--suite sets its own datasets and methods: drop {', '.join(clashing)} "
            "(or run a plain benchmark without --suite)"
        )
    suite = get_suite(args.suite)
    jobs = args.jobs if args.jobs is not None else default_jobs("cpu")
    if jobs < 1 or args.threads_per_job < 1:
        raise ConfigError("--jobs and --threads-per-job must be at least 1")
    command = "robustfusion " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    reports = run_suite(
        suite.name,
        Path(args.out).expanduser().resolve(),
        jobs=jobs,
        threads_per_job=args.threads_per_job,
        parts=tuple(args.part) if args.part else None,
        progress=not args.no_progress,
        results_page=Path(args.results_page) if args.results_page else None,
        command=command,
    )
    for name, report in reports.items():
        print(f"{name}: {report}")
    if args.results_page:
        print(f"results page: {args.results_page}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.report_only:
        from robustfusion.evaluation.report import write_report

        print(write_report(Path(args.out)))
        return 0
    if args.suite is not None:
        return run_suite_command(args)
    if args.part or args.results_page:
        raise ConfigError("--part and --results-page go with --suite NAME")
    config = config_from_args(args)
    benchmark = Benchmark(config, progress=not args.no_progress)
    benchmark.check_options_used()
    benchmark.check_folder()
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
