"""``robustfusion prepare NAME``: build a dataset's files (dispatches to the PREPARERS registry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustfusion.accepts import TEXT, ArgType, PairType
from robustfusion.commands._options import flat_options
from robustfusion.errors import ConfigError
from robustfusion.registry import PREPARERS, check_options

NAME = "prepare"
HELP = "prepare a dataset's files (e.g. synthesise AV-digits); prints the prepared folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        metavar="NAME",
        type=ArgType(TEXT, "NAME"),
        help="what to prepare, e.g. avdigits (datasets that need it say so)",
    )
    parser.add_argument(
        "--raw",
        type=ArgType(TEXT, "--raw"),
        help="folder of the raw download, where the step needs one (default: none)",
    )
    parser.add_argument(
        "--out",
        type=ArgType(TEXT, "--out"),
        help="where to write (default: the dataset's cache folder)",
    )
    parser.add_argument(
        "--task",
        type=ArgType(TEXT, "--task"),
        help="which task's files, for a dataset with several (nyudv2: scene or segmentation; "
        "the same as --option task=NAME; default: the step's own)",
    )
    parser.add_argument(
        "--option",
        action="append",
        type=PairType("--option"),
        metavar="KEY=VALUE",
        help="step option, value parsed as YAML (repeatable; default: none)",
    )


def run(args: argparse.Namespace) -> int:
    step = PREPARERS.get(args.name)
    options = flat_options(args.option, "--option") or {}
    if args.task is not None:
        if "task" in options:
            raise ConfigError("give the task once: --task NAME or --option task=NAME, not both")
        options["task"] = args.task
    raw = Path(args.raw).expanduser() if args.raw else None
    out = Path(args.out).expanduser() if args.out else None
    check_options(step, options, f"prepare {args.name!r}", raw, out)
    prepared = step(raw, out, **options)
    print(prepared)
    return 0
