"""``robustfusion train``: train one method on one dataset and write a run folder."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from robustfusion.accepts import TEXT, ArgType
from robustfusion.commands._settings import (
    SETTINGS,
    add_print_config_argument,
    add_settings,
    overrides_from_args,
)
from robustfusion.errors import ConfigError, RunFolderError
from robustfusion.training.config import TrainConfig

NAME = "train"
HELP = "train a method on a dataset; writes DIR/config.yaml, DIR/model.pt and DIR/metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings(parser)
    run = parser.add_argument_group("run")
    run.add_argument(
        "--config",
        metavar="FILE.yaml",
        type=ArgType(TEXT, "--config"),
        help="a config.yaml to start from; flags override its values (default: none)",
    )
    run.add_argument(
        "--out",
        metavar="DIR",
        type=ArgType(TEXT, "--out"),
        help="the run folder (default: the config's out, if any)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue DIR's run from its last checkpoint with its own settings; with --epochs N, "
        "extend a finished run to N epochs",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in DIR; the old run stays until the new one completes",
    )
    add_print_config_argument(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The base config (``--config``, or DIR's own when resuming), overridden by the flags."""
    if args.resume and args.overwrite:
        raise ConfigError(
            "--resume and --overwrite exclude each other: --resume continues the run in --out, "
            "--overwrite replaces it"
        )
    if args.config is not None:
        base = TrainConfig.from_yaml(Path(args.config))
    elif args.resume:
        base = _saved_config(args.out)
    else:
        base = TrainConfig()
    config = base.with_overrides(**overrides_from_args(args, SETTINGS), out=args.out)
    # a flag beats the config: --dataset replaces its data file and --data its dataset
    if args.dataset is not None and args.data is None:
        config = dataclasses.replace(config, data=None)
    if args.data is not None and args.dataset is None:
        config = dataclasses.replace(config, dataset=None)
    return config


def _saved_config(out: str | None) -> TrainConfig:
    if out is None:
        raise ConfigError("--resume needs --out DIR, the run folder to continue")
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise RunFolderError(
            f"{out} holds no run to resume (no config.yaml): start one with robustfusion train "
            f"--dataset NAME (or --data FILE.npz) --out {out}"
        )
    return TrainConfig.from_yaml(path)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.print_config:
        sys.stdout.write(config.resolved(require_out=False).to_yaml_text())
        return 0
    from robustfusion.training.run import train  # Lightning loads only when training

    metrics = train(
        config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    if metrics:
        from robustfusion.tasks import task_of

        task = task_of(str(metrics.get("task", "classification")))
        print(f"{task.summary_line(metrics)}  -> {config.resolved().out}")
    return 0
